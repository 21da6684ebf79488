"""`python -m behemoth_hf.cli`, with accelerate's FSDP engine allowed on CPU processes: a launcher for tests.

accelerate runs FSDP only on accelerators: on CPU processes it quietly turns an FSDP launch configuration into
plain data parallel (`DistributedType.MULTI_CPU`). torch's FSDP2 itself runs on CPU over gloo, so this launcher
lets accelerate's own FSDP code (`fully_shard`, sharded checkpoints, gathering the full state dict) run here: it
names the CPU processes' state as a multi-device one before the Accelerator reads it, and changes nothing else.
CI has no GPU; without this, nothing would exercise the package's FSDP paths before a user's GPU run does.

    ACCELERATE_USE_CPU=1 accelerate launch --config_file trainer_configs/accelerate/fsdp.yaml \
        --num_processes 2 --mixed_precision no tests/fsdp_on_cpu.py pretrain ...
"""

import sys

from accelerate import state
from accelerate.utils import DistributedType


_original_init = state.PartialState.__init__


def _init_as_multi_device(self, cpu: bool = False, **kwargs) -> None:
    _original_init(self, cpu=cpu, **kwargs)
    if self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.MULTI_GPU


state.PartialState.__init__ = _init_as_multi_device

if __name__ == "__main__":
    from behemoth_hf.cli import main

    sys.exit(main())
