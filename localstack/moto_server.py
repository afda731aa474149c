"""moto's server, with three lookups made cheap for a test suite that keeps many stacks in one region.

moto answers "the tags of resource X" (asked for every resource a Describe* call returns, and for every resource a
`tag:` filter looks at) by scanning every tag of every resource in the region (moto 5.2.5,
ec2/models/core.py `TaggedEC2Resource.get_tags` -> `TagBackend.describe_tags`). With the suite's stacks side by
side that made tag scanning ~2/3 of moto's CPU, and moto's one busy core the suite's bottleneck. The same answer
is read here straight from moto's own tag table, keyed by resource id: same tags, same order, same fields.

Two more costs paid on every request (measured with py-spy over the whole suite: ~60% of what remained) are
answers that cannot change while the server runs, now computed once: the list of moto's service folders (an
os.listdir + isdir of ~150 folders, werkzeug_app.py `get_backend_for_host`) and the method names of a response
class (inspect.getmembers, core/responses.py `call_action`).

One answer is corrected rather than sped up: when moto cannot run a Lambda function's code (no Docker), it logs
that to the function's log group with a fractional millisecond timestamp (awslambda/models.py `save_logs`), which no
AWS SDK parses as the integer CloudWatch Logs timestamps are: every later FilterLogEvents on the group then fails
("invalid number"). Its timestamps are made whole milliseconds, as AWS's are.

Nothing else of moto changes. LocalStack's EC2 is moto's too: localstack_server.py applies the tag lookup there.
"""

import sys


def patch_ec2_tags():
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self):
        resource_id = self.id
        if not resource_id:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in self.ec2_backend.tags.get(resource_id, {}).items()
        ]

    TaggedEC2Resource.get_tags = get_tags


def patch_server():
    import moto.core.responses
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    uncached = moto.core.responses.method_names_from_class
    cache = {}

    def method_names_from_class(clazz):
        names = cache.get(clazz)
        if names is None:
            names = cache[clazz] = uncached(clazz)
        return names

    moto.core.responses.method_names_from_class = method_names_from_class


def patch_lambda_log_timestamps():
    import moto.awslambda.models as awslambda

    fractional = awslambda.unix_time_millis
    awslambda.unix_time_millis = lambda *args: int(fractional(*args))


if __name__ == "__main__":
    patch_ec2_tags()
    patch_server()
    patch_lambda_log_timestamps()
    from moto.server import main

    sys.exit(main())
