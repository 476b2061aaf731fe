#!/usr/bin/env bash
# The landed cpu-tier results: every command that made a record under leaderboards/records.
# A record that exists is skipped, so this resumes after a kill. Start it in two terminals
# to use two lanes: suites on one records folder split the pairs between them.
#
#     OMP_NUM_THREADS=1 bash scripts/cpu_suite.sh      # in each lane, on a 2-core machine
set -euo pipefail
zoo bench run ptb_word --tier cpu                      # 1 seed; ran alone, with both cores
zoo bench run smnist --tier cpu --models lstm_1x128    # 100 minutes
zoo bench run gradient_study --tier cpu                # 42 models x 3 seeds, 1,000 steps each
zoo bench run adding_t100 --tier cpu                   # 4 models x 3 seeds
zoo bench run copy_t100 --tier cpu --seeds 0
zoo leaderboard build --allow_dirty  # until the sMNIST record (made from a dirty checkout) is re-run
