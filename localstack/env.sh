# shellcheck shell=bash
# Source me (`. localstack/env.sh`) to point the AWS SDK / CLI at the local emulator.
# Emulator-only: it overrides everything on purpose, so a test run can never reach a real account.
# No `set -euo pipefail` here: it would leak into the shell that sources this file.
export AWS_ENDPOINT_URL=http://127.0.0.1:4566   # one port serves every service, global ones included
export AWS_ACCESS_KEY_ID=test                   # dummy keys: both emulators accept any
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION="$AWS_REGION"         # the Python-based aws CLI / boto3 read this name
unset AWS_PROFILE                               # a profile could bring real credentials or a region
