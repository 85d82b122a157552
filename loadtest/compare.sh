#!/bin/sh
# Side by side: the same SMTP load through a private Postfix and through the
# UGEM gateway (see loadtest/compare.py). Arguments go to the compare command:
#   loadtest/compare.sh --messages 10000 --connections 50 --size 2048 [--json]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
cd "$here"
exec "$python" -m loadtest compare postfix "$@"
