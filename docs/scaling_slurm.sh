#!/bin/bash
# Data-parallel Pinnacle training on 2 nodes x 4 GPUs under SLURM (docs/scaling.md). Every task runs the same
# pinnacle train; rank 0 (SLURM_PROCID 0) writes the run under --runs, which must be on a shared filesystem.
#SBATCH --job-name=pinnacle-dp
#SBATCH --nodes=2
#SBATCH --gpus-per-node=4
#SBATCH --ntasks-per-node=4          # torch: one task per GPU (tensorflow: --ntasks-per-node=1)
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
set -euo pipefail
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=29500
BACKEND=${BACKEND:-torch}
srun pinnacle train /shared/scan.cxi --backend "$BACKEND" --accelerator gpu --devices 4 --num-nodes 2 \
     --epochs 50 --filters-scale 2 --batch-size 64 --runs /shared/runs --no-progress
