"""MPyC side of the MPC benchmark: secure sum and element-wise multiplication with secure
NumPy arrays (MPyC's fastest API), 3 local parties. Run by bench_mpc.py, not directly:

    MPC_BENCH_OP=sum MPC_BENCH_VALUES=10000 python mpyc_stats.py -M3 -B 12000

Party 0 prints one JSON line: {"op", "values", "runs": [seconds, ...]}. The job runs
MPC_BENCH_RUNS times in the same processes (the first is the cold run); timing covers the input
round, the computation and the output (opening), like the smpcloud figures it is compared with.
"""

import json
import os
import time

import numpy as np
from mpyc.runtime import mpc

OP = os.environ.get("MPC_BENCH_OP", "sum")
VALUES = int(os.environ.get("MPC_BENCH_VALUES", "10000"))
RUNS = int(os.environ.get("MPC_BENCH_RUNS", "1"))


async def job(secint: type, rng: np.random.Generator) -> tuple[float, int]:
    mine = rng.integers(-1000, 1000, VALUES)
    await mpc.barrier()
    start = time.perf_counter()
    if OP == "sum":
        shared = mpc.input(secint.array(mine))
        total = shared[0]
        for x in shared[1:]:
            total = total + x
        out = await mpc.output(total)
    else:
        other = rng.integers(-1000, 1000, VALUES)
        x = mpc.input(secint.array(mine), senders=0)
        y = mpc.input(secint.array(other), senders=1)
        out = await mpc.output(x * y)
    return time.perf_counter() - start, int(out[0])


async def main() -> None:
    secint = mpc.SecInt(64)
    await mpc.start()
    rng = np.random.default_rng()  # benchmark data only, not key material
    runs = [await job(secint, rng) for _ in range(RUNS)]
    if mpc.pid == 0:
        seconds = [s for s, _ in runs]
        print(json.dumps({"op": OP, "values": VALUES, "runs": seconds, "check": runs[0][1]}))
    await mpc.shutdown()


mpc.run(main())
