#!/bin/bash
# Issue 35's frontier budgets on the shared FashionMNIST reference (50 converged architectures), in two queues.
# Every score is cached in runs/fashion_mnist/ (committed: a session's machine can be wiped), so this script
# continues where any earlier run stopped, here or on another machine of the same kind; commit the new caches.
# Every run trains on one kernel thread: a score depends on the thread count (README, "Repeatability").
#   bash benchmarks/frontier_cache/run.sh        # both queues, one after the other
#   bash benchmarks/frontier_cache/run.sh 1      # the cheap budgets   } one per core, side by side
#   bash benchmarks/frontier_cache/run.sh 2      # the long budgets    }
# (nohup nice -n 5 ... > benchmarks/frontier_cache/log1 2>&1 & runs one in the background.) Then, from this folder:
#   python ../noref.py fashion_mnist --families zero-cost,short,sample,subset,dm --short 0.05,0.1,0.2 \
#     --samples 0.01,0.05,0.1 --readouts val_acc,tse,tse_e,tse_ema,loss_fit
set -x
cd "$(dirname "$0")"
export NAS_PROXY_DATA="${NAS_PROXY_DATA:-$(cd ../../.. && pwd)/shared/data}"
reference="$NAS_PROXY_DATA/../reference/fashion_mnist_converged.csv"
F="nas-proxy frontier fashion_mnist --no-plot --no-progress --threads 1 --readouts val_acc,tse,tse_e,tse_ema,loss_fit"
ls runs/fashion_mnist/reference/*imported* > /dev/null 2>&1 || nas-proxy reference fashion_mnist --import "$reference" \
  --protocol "shared reference: 6 epochs one-cycle 0.02, bf16, 2 seeds (../shared/reference/README.md)"
if [ "${1:-1}" = 1 ]; then
  $F --families zero-cost,short --short 0.05 --out out/short05
  $F --families sample --samples 0.01,0.05 --out out/sample
  $F --families subset,dm --ipc 10 --out out/subset_dm
  $F --families warm --short 0.05 --dm-ipc 10 --out out/warm
fi
if [ "${1:-2}" = 2 ]; then
  $F --families short --short 0.1 --out out/short10
  $F --families sample --samples 0.1 --out out/sample10
  $F --families short --short 0.2 --out out/short20
fi
echo DONE
