"""Asks LocalStack once for each service the tests use, one after another, before any test runs.

LocalStack loads a service (its provider, and the moto backend behind it) on the service's first request. Eight tests
starting at once make those first requests at the same moment, and two services importing one shared module from two
threads can trip Python's import deadlock detection (seen: `deadlock detected by _ModuleLock('moto.s3.exceptions')`
on logs.DescribeLogGroups, after which every call of that service answered 500 InternalError). Loading them one at a
time here, before `localstack/up` says ready, takes that race away. An answer that is an error (a service the free
edition does not serve) is fine: the point is only that the loading is done.
"""

import sys

import boto3

CALLS = [
    ("sts", "get_caller_identity", {}),
    ("ec2", "describe_vpcs", {}),
    ("s3", "list_buckets", {}),
    ("sns", "list_topics", {}),
    ("logs", "describe_log_groups", {"limit": 1}),
    ("iam", "list_roles", {"MaxItems": 1}),
    ("ssm", "describe_parameters", {"MaxResults": 1}),
    ("route53", "list_hosted_zones", {}),
    ("lambda", "list_functions", {"MaxItems": 1}),
    ("acm", "list_certificates", {}),
    ("cloudfront", "list_distributions", {}),
    ("elbv2", "describe_load_balancers", {}),
    ("rds", "describe_db_instances", {}),
]


def main(endpoint):
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    for service, operation, params in CALLS:
        client = session.client(service, endpoint_url=endpoint)
        try:
            getattr(client, operation)(**params)
        except Exception:  # noqa: BLE001 - an error answer still loaded the service
            pass


if __name__ == "__main__":
    main(sys.argv[1])
