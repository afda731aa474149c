"""LocalStack's runtime, with moto's EC2 tag lookup read by resource id (see moto_server.py): same answers.

The moto backends behind the services the tests use are imported here, in one thread, before LocalStack serves
anything: imported lazily by the first requests of several services at once, two threads importing one shared module
can trip Python's import deadlock detection (seen: `deadlock detected by _ModuleLock('moto.s3.exceptions')`, and that
service answering 500 from then on). `warm_up.py` then loads LocalStack's own providers one at a time."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moto_server import patch_ec2_tags  # noqa: E402

if __name__ == "__main__":
    patch_ec2_tags()
    for module in ("s3.exceptions", "s3.models", "logs.models", "sns.models", "iam.models", "sts.models",
                   "ssm.models", "route53.models", "awslambda.models", "acm.models", "ec2.models"):
        __import__(f"moto.{module}")
    from localstack.runtime.main import main

    main()
