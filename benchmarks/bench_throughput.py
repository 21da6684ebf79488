"""Pretraining throughput and model FLOP utilisation (MFU) of every preset, and the paper's projected cost.

    python benchmarks/bench_throughput.py            # writes benchmarks/results/throughput-<UTC time>.json
    python benchmarks/bench_throughput.py --update   # merges into the committed benchmarks/results/throughput.json
    python benchmarks/bench_throughput.py --update --processes 1 --threads 1   # adds 1-process, 1-thread cases

Data: the `paper` world (100,000 subjects x 6 relations x 400 objects, its vocabulary and its two-word subject
names) generated with 1 repeat instead of 500, batched by `behemoth_hf.pretrain.SentenceBatches` exactly as
`behemoth pretrain` batches it (answer loss). One pass over that corpus gives the exact tokens of one repeat
and the rate of the data pipeline; its first batches are saved for the workers.

Each case (preset x number of processes) runs in a fresh process, so its peak memory is its own: an
`accelerate` loop of forward + backward + AdamW step (`loss.item()` every step, as in `pretrain`) over those
batches, a few warm-up steps, then timed steps for `--seconds`. The 2-process case is launched with
`torchrun` (gloo, 1 thread per process: the same cores as the 1-process case, which uses torch's default
thread count, or `--threads`). With CUDA the same runs in bf16 (`--gpu-batch-size` sentences per step) and the device is
named. tokens/s counts real (non-padding) tokens.

Model FLOPs (PaLM, Chowdhery et al. 2022, appendix B; as nanoGPT's `estimate_mfu`) of a sentence of n tokens,
forward + backward:  6 * N * n + 12 * L * d * n^2, where N = weights that multiply activations (2-D parameters,
less embedding tables that are only indexed; a tied input/output matrix counts once), L = layers, d = width.
Each case checks this against `torch.utils.flop_counter` on one padded batch (eager attention): `flop_counter_ratio`.
MFU = achieved model FLOPs/s / a matmul ceiling measured in the same process(es), with the same threads, right
after the training steps (fp32 2048 x 2048 on CPU, bf16 8192 x 8192 on CUDA; best of a few, every process at
once). The record names the machine and, per run and per case, the load average: on a shared machine both
rates are lower, and they fluctuate with the load between the two measurements.

The projection of the paper's pretraining (one pass over 500 repeats = 300M sentences) divides its model FLOPs by
the measured rate of `pythia-31m` on this CPU; for GPUs, by a published bf16 dense peak times an assumed MFU
(labelled as such), and, where CUDA was measured, by the measured rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from behemoth_hf.modeling import PRESETS
from results_file import add_output_arguments, merge, output_path, write_record


SCRIPT = Path(__file__).resolve()
PAPER_REPEATS = 500  # the `paper` config's repeats: its train split is the corpus one pass reads
POOL_BATCHES = 32  # batches handed to the workers (cycled); 16 per process with 2 processes
WARMUP_STEPS = 3
MIN_STEPS, MAX_STEPS = 3, 2000
CPU_MATMUL = (2048, torch.float32)
CUDA_MATMUL = (8192, torch.bfloat16)
# NVIDIA H100 SXM datasheet: 1,979 TFLOP/s bf16 "with sparsity", i.e. 989 dense (the H200 has the same compute).
H100_BF16_DENSE_FLOPS = 989e12
PROJECTED_GPUS = (1, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    parser.add_argument("--processes", nargs="+", type=_positive_int, default=[1, 2], help="data-parallel processes")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="sentences per process per step on CPU")
    parser.add_argument("--gpu-batch-size", type=_positive_int, default=256, help="same on CUDA (pythia-31m recipe)")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="threads of the 1-process case (default: torch's, one per core); with more processes it is 1 each",
    )
    parser.add_argument("--seconds", type=_positive_float, default=3.0, help="timed seconds per case, after warm-up")
    add_output_arguments(parser, "throughput")
    args = parser.parse_args()
    path = output_path(parser, args, "throughput")
    started, load_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getloadavg()
    cuda_devices = torch.cuda.device_count()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus, pools = prepare_corpus(scratch, {"cpu": args.batch_size, "cuda": args.gpu_batch_size})
        print(json.dumps(corpus))
        results = []
        for device in ["cpu"] + (["cuda"] if cuda_devices else []):
            for processes in args.processes:
                if device == "cuda" and processes > cuda_devices:
                    continue
                for preset in args.presets:
                    load = [round(x, 2) for x in os.getloadavg()]
                    result = run_case(preset, device, processes, args.threads, pools[device], args.seconds, scratch)
                    result.update(run=started, load_average_before=load)
                    print(json.dumps(result))
                    results.append(result)
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cores={os.cpu_count()}",
        "torch": torch.__version__,
        # One entry per run (kept by --update), each result naming its run: results merge from several runs.
        "runs": {
            started: {
                "command": "python " + " ".join([f"benchmarks/{SCRIPT.name}", *sys.argv[1:]]),
                "load_average_start": [round(x, 2) for x in load_start],
                "load_average_end": [round(x, 2) for x in os.getloadavg()],
            }
        },
        "load_note": "1/5/15-minute load averages; the machine is shared with other jobs (a load above the core "
        "count means the cases ran with less than the whole CPU, so tokens/s and the matmul ceiling are both lower)",
        "flops_formula": "per sentence of n tokens, forward + backward: 6*N*n + 12*L*d*n^2 (PaLM appendix B); N = "
        "weights that multiply activations (2-D parameters less indexed-only embedding tables), L layers, d width",
        "mfu": "achieved model FLOPs/s over the matmul ceiling measured in the same process(es) and threads",
        "corpus": corpus,
        "results": results,
    }
    if args.update and path.exists():
        # Merged first, so that the projection uses every case measured so far.
        identity = {"results": ("preset", "device", "processes", "threads_per_process")}
        record = merge(json.loads(path.read_text()), record, identity)
    pythia = [r for r in record["results"] if r["preset"] == "pythia-31m"]
    if pythia:
        record["projection"] = project(corpus, pythia)
    write_record(path, record, update=False)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


# ---------------------------------------------------------------------------------------------- corpus
def prepare_corpus(scratch: Path, batch_sizes: dict[str, int]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The paper world with 1 repeat: its token counts, the data pipeline's rate, and batch pools for the workers."""
    from behemoth_hf.config import make_config
    from behemoth_hf.data import open_dataset
    from behemoth_hf.generate import generate_dataset
    from behemoth_hf.pretrain import SentenceBatches

    config = make_config("paper", repeats=1)
    data = open_dataset(str(generate_dataset(config, scratch / "paper-1-repeat", progress=False)))
    tokenizer = data.tokenizer
    sentences = tokens = squares = 0
    start = time.perf_counter()
    for batch in SentenceBatches(data, batch_sizes["cuda"], "answer", 0, None):
        lengths = batch["attention_mask"].sum(1)
        sentences += len(lengths)
        tokens += int(lengths.sum())
        squares += int(lengths.square().sum())
    seconds = time.perf_counter() - start
    pools = {}
    for device, size in batch_sizes.items():
        batches = []
        for batch in SentenceBatches(data, size, "answer", 0, None):
            batches.append(batch)
            if len(batches) == POOL_BATCHES:
                break
        pools[device] = scratch / f"batches-{device}.pt"
        special = {"vocab_size": len(tokenizer), "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
        torch.save({**special, "batches": batches}, pools[device])
    corpus = {
        "world": "paper (100,000 subjects x 6 relations x 400 objects) with repeats=1; the paper's corpus is "
        f"{PAPER_REPEATS} such passes, read once",
        "vocab_size": len(tokenizer),
        "sentences_per_repeat": sentences,
        "tokens_per_repeat": tokens,  # sentence without its "." + <eos>, as SentenceBatches feeds the model
        "sum_squared_lengths_per_repeat": squares,
        "tokens_per_sentence": round(tokens / sentences, 3),
        "data_pipeline_tokens_per_second": round(tokens / seconds),
        "data_pipeline_note": f"one process reading Parquet and tokenizing into batches of {batch_sizes['cuda']} "
        "(SentenceBatches, the --gpu-batch-size); `behemoth pretrain` makes every batch in its main process "
        "(dispatch_batches)",
    }
    return corpus, pools


# ---------------------------------------------------------------------------------------------- cases
def run_case(
    preset: str, device: str, processes: int, threads: int | None, pool: Path, seconds: float, scratch: Path
) -> dict[str, Any]:
    """One preset on `device` with `processes` processes, in fresh process(es); the result rank 0 wrote."""
    result_file = scratch / f"{preset}-{device}-{processes}-{threads}.json"
    spec = json.dumps(
        {"preset": preset, "device": device, "pool": str(pool), "seconds": seconds, "result": str(result_file)}
    )
    environment = dict(os.environ)
    if device == "cpu":
        environment["ACCELERATE_USE_CPU"] = "1"
    if processes == 1:
        if threads is not None:
            environment["OMP_NUM_THREADS"] = str(threads)
        command = [sys.executable, str(SCRIPT), "--worker", spec]
    else:
        # 1 thread per process, so the processes share the cores the 1-process case uses alone.
        environment["OMP_NUM_THREADS"] = "1"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        command += [str(SCRIPT), "--worker", spec]
    completed = subprocess.run(command, check=False, env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{preset} on {device} x{processes} failed:\n{completed.stderr[-3000:]}")
    return json.loads(result_file.read_text())


def worker(spec: dict[str, Any]) -> None:
    """Measure one case in this process (one rank of it under torchrun); rank 0 writes the result file."""
    from accelerate import Accelerator
    from accelerate.utils import gather_object

    cuda = spec["device"] == "cuda"
    accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")
    pool = torch.load(spec["pool"], weights_only=True)
    measured = measure_training(accelerator, spec["preset"], pool, spec["seconds"])
    # After training (its peak memory is read) and with every process at once: the ceiling of the same cores.
    accelerator.wait_for_everyone()
    measured["ceiling"] = matmul_ceiling(accelerator.device, *(CUDA_MATMUL if cuda else CPU_MATMUL))
    ranks = gather_object([measured])
    if not accelerator.is_main_process:
        return
    first, wall = ranks[0], max(r["elapsed"] for r in ranks)
    achieved, ceiling = sum(r["flops"] for r in ranks) / wall, sum(r["ceiling"] for r in ranks)
    result = {
        "preset": spec["preset"],
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "processes": accelerator.num_processes,
        "precision": "bf16" if cuda else "fp32",
        "threads_per_process": torch.get_num_threads(),
        "batch_size_per_process": len(pool["batches"][0]["input_ids"]),
        **{key: first[key] for key in ("parameters", "matmul_weights_N", "layers", "width", "flop_counter_ratio")},
        "timed_steps": first["steps"],
        "timed_seconds": round(wall, 3),
        "tokens_per_second": round(sum(r["tokens"] for r in ranks) / wall),
        "model_gflops_per_second": round(achieved / 1e9, 2),
        "matmul_ceiling_gflops_per_second": round(ceiling / 1e9, 2),
        "mfu": round(achieved / ceiling, 4),
        "peak_rss_mb_per_process": round(max(r["peak_rss_kb"] for r in ranks) / 1024, 1),
        "rss_before_model_mb_per_process": round(max(r["rss_before_model_kb"] for r in ranks) / 1024, 1),
    }
    if cuda:
        result["peak_cuda_allocated_mb_per_process"] = round(max(r["peak_cuda"] for r in ranks) / 2**20, 1)
    Path(spec["result"]).write_text(json.dumps(result))


def measure_training(accelerator, preset: str, pool: dict[str, Any], seconds: float) -> dict[str, Any]:
    """This process's share of the timed training steps: elapsed time, real tokens, model FLOPs, peak memory."""
    from accelerate.utils import gather_object

    from behemoth_hf.modeling import build_model

    rank, world, cuda = accelerator.process_index, accelerator.num_processes, accelerator.device.type == "cuda"
    batches = [{k: v.to(accelerator.device) for k, v in b.items()} for b in pool["batches"][rank::world]]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before_model_kb = _memory_kb("VmRSS")
    model = build_model(preset, pool["vocab_size"], eos_token_id=pool["eos"], pad_token_id=pool["pad"], seed=0)
    weights, layers, width = matmul_weights(model), model.config.num_hidden_layers, model.config.hidden_size
    shape = {"parameters": model.num_parameters(), "matmul_weights_N": weights, "layers": layers, "width": width}
    shape["flop_counter_ratio"] = flop_counter_ratio(preset, pool, weights) if rank == 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    def step(batch: dict[str, torch.Tensor]) -> None:
        loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        loss.item()  # as pretrain does every step (and a sync point on CUDA)

    for i in range(WARMUP_STEPS):
        if i == 1:
            warm_start = time.perf_counter()  # the first step allocates and builds kernels: not representative
        step(batches[i % len(batches)])
    warm_step = (time.perf_counter() - warm_start) / (WARMUP_STEPS - 1)
    # Every process runs the same number of steps (DDP synchronises each one).
    steps = min(MAX_STEPS, max(MIN_STEPS, math.ceil(seconds / max(gather_object([warm_step])))))
    tokens = flops = 0
    accelerator.wait_for_everyone()
    start = time.perf_counter()
    for i in range(steps):
        batch = batches[(WARMUP_STEPS + i) % len(batches)]
        step(batch)
        lengths = batch["attention_mask"].sum(1).tolist()
        tokens += sum(lengths)
        flops += sum(6 * weights * n + 12 * layers * width * n * n for n in lengths)
    elapsed = time.perf_counter() - start
    return {
        **shape,
        "steps": steps,
        "elapsed": elapsed,
        "tokens": tokens,
        "flops": flops,
        "rss_before_model_kb": rss_before_model_kb,
        "peak_rss_kb": _memory_kb("VmHWM"),
        "peak_cuda": torch.cuda.max_memory_allocated() if cuda else None,
    }


def _memory_kb(field: str) -> int:
    """`VmRSS` (now) or `VmHWM` (peak) of this process, in kB. Not `ru_maxrss`: that survives exec, so a worker
    would report the peak of the benchmark process that started it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (the memory figures need Linux)")


def matmul_weights(model: torch.nn.Module) -> int:
    """N of the FLOPs formula: 2-D parameters, less the embedding tables that are only indexed, not multiplied
    (token embeddings unless tied to the output layer, learned positions). Biases and norms are left out."""
    output = model.get_output_embeddings().weight
    indexed = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.weight is not output}
    return sum(p.numel() for p in model.parameters() if p.dim() >= 2 and id(p) not in indexed)


def flop_counter_ratio(preset: str, pool: dict[str, Any], weights: int) -> float:
    """torch's FLOP count of forward + backward on 8 padded rows over the formula's count of the same shape.

    Eager attention, because the counter does not see CPU SDPA kernels; padded, because the kernels compute the
    padding too (the throughput figures count real tokens only).
    """
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    from behemoth_hf.modeling import model_config

    config = model_config(preset, pool["vocab_size"], eos_token_id=pool["eos"], pad_token_id=pool["pad"])
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    batch = {k: v[:8] for k, v in pool["batches"][0].items()}
    rows, width = batch["input_ids"].shape
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    layers, hidden = config.num_hidden_layers, config.hidden_size
    return round(counter.get_total_flops() / (6 * weights * rows * width + 12 * layers * hidden * rows * width**2), 6)


def matmul_ceiling(device: torch.device, size: int, dtype: torch.dtype, repeats: int = 4) -> float:
    """FLOP/s of the best of `repeats` size x size matmuls (after one warm-up) on `device`."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = math.inf
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


# ---------------------------------------------------------------------------------------------- projection
def project(corpus: dict[str, Any], pythia: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall time of the paper's pretraining: its model FLOPs over measured (CPU, CUDA) or assumed (GPU) rates."""
    model = pythia[0]
    tokens = corpus["tokens_per_repeat"] * PAPER_REPEATS
    flops = PAPER_REPEATS * (
        6 * model["matmul_weights_N"] * corpus["tokens_per_repeat"]
        + 12 * model["layers"] * model["width"] * corpus["sum_squared_lengths_per_repeat"]
    )
    cpu = max((r for r in pythia if r["device"] == "cpu"), key=lambda r: r["tokens_per_second"])
    projection = {
        "run": f"paper world, pythia-31m shape (N={model['matmul_weights_N']:,} with the paper's vocabulary of "
        f"{corpus['vocab_size']:,}), one pass over {PAPER_REPEATS} repeats",
        "sentences": corpus["sentences_per_repeat"] * PAPER_REPEATS,
        "tokens": tokens,
        "model_flops": flops,
        "this_cpu": {
            "measured": f"pythia-31m, {cpu['processes']} process(es), {cpu['tokens_per_second']:,} tokens/s",
            "hours": round(tokens / cpu["tokens_per_second"] / 3600, 1),
        },
        "data_pipeline_hours": round(tokens / corpus["data_pipeline_tokens_per_second"] / 3600, 2),
        "data_pipeline_note": "time for one process to make every batch (today's pretrain makes them all in the main "
        "process): a floor under any projection below that is shorter",
    }
    mfu = cpu["mfu"]
    for gpus in PROJECTED_GPUS:
        projection[f"h100_x{gpus}_projected"] = {
            "assumption": f"PROJECTION, not measured: {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s bf16 dense peak "
            f"(H100 SXM datasheet) per GPU x MFU {mfu} (pythia-31m measured on this CPU) x {gpus} GPU(s), "
            "data parallel scaling linearly; a 5.5M-weight model on 256-sentence batches is more likely bound by "
            "kernel launches and the optimizer step on a GPU, so its real MFU can be far lower",
            "hours": round(flops / (H100_BF16_DENSE_FLOPS * mfu * gpus) / 3600, 3),
        }
    for measured in (r for r in pythia if r["device"] != "cpu"):
        rate = measured["tokens_per_second"]
        projection[f"cuda_x{measured['processes']}_measured"] = {
            "measured": f"{measured['device']}, {measured['processes']} process(es), {rate:,} tokens/s, MFU "
            f"{measured['mfu']}",
            "hours": round(tokens / rate / 3600, 3),
            "hours_8_gpus_if_linear": round(tokens * measured["processes"] / (8 * rate) / 3600, 3),
        }
    return projection


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(json.loads(sys.argv[2]))
    else:
        main()
