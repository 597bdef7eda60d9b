#!/usr/bin/env bash
# A new domain from a one-page spec: build a small strategy library for Pedal & Co.'s bike-rental support
# (examples/support_domain.yaml) with the local models, offline, then list and show what was admitted.
#
#     bash examples/new_domain.sh                 # ~10 minutes on two CPU cores
#     ITERATIONS=3 BATCH=6 bash examples/new_domain.sh
#
# The teacher writes customer requests from the spec (aimed at the weakest categories), the student answers
# them with the spec's tools, the teacher grades each answer against the spec's rubric (there is no ground
# truth in a new domain), writes strategies from the failures, and the loop admits those that measurably help.
# The build ends with the held-out pass rate without and with the library. Review the entries afterwards:
# `agentkd library review --library build/libs/bike_rental --collection bike_rental`.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=${LIB:-build/libs/bike_rental}
agentkd build --task spec:examples/support_domain.yaml --library "$LIB" --collection bike_rental \
  --iterations "${ITERATIONS:-1}" --batch-size "${BATCH:-4}" --heldout "${HELDOUT:-4}" --siblings 1
agentkd library list --library "$LIB" --collection bike_rental
agentkd library export "$LIB.files" --library "$LIB" --collection bike_rental
echo "the entries as reviewable files: $LIB.files"
