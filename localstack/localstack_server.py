"""LocalStack's runtime, with moto's EC2 tag lookup read by resource id (see moto_server.py): same answers."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moto_server import patch_ec2_tags  # noqa: E402

if __name__ == "__main__":
    patch_ec2_tags()
    from localstack.runtime.main import main

    main()
