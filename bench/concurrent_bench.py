#!/usr/bin/env python3
"""Python's concurrent.futures on the workloads of concurrent_bench.cpp.

Prints one "name value" line per measurement, which concurrent_bench parses:
  thread_rt_us  thread_tput  process_rt_us  process_tput  cpu_speedup  to_thread_rt_us
Usage: concurrent_bench.py [--quick]   (--quick divides the counts by 10)
"""
import asyncio
import concurrent.futures as cf
import math
import sys
import time


def noop():
    pass


def small(x):
    return x * 2 + 1


def burn(rounds):
    acc = 0.0
    for i in range(1, rounds + 1):
        acc += math.sqrt(i) / i
    return acc


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def round_trip_us(ex, n):
    ex.submit(noop).result()
    return timed(lambda: [ex.submit(noop).result() for _ in range(n)]) / n * 1e6


def throughput(ex, fn, n):
    ex.submit(fn, 1).result() if fn is small else ex.submit(fn).result()

    def run():
        fs = [ex.submit(fn, i) for i in range(n)] if fn is small else [ex.submit(fn) for _ in range(n)]
        for f in fs:
            f.result()

    return n / timed(run)


def cpu_time(workers, calls, rounds):
    with cf.ProcessPoolExecutor(workers) as ex:
        for _ in range(workers):
            ex.submit(noop).result()
        return timed(lambda: [f.result() for f in [ex.submit(burn, rounds) for _ in range(calls)]])


async def to_thread_rt_us(n):
    await asyncio.to_thread(noop)
    start = time.perf_counter()
    for _ in range(n):
        await asyncio.to_thread(noop)
    return (time.perf_counter() - start) / n * 1e6


def main():
    scale = 10 if "--quick" in sys.argv[1:] else 1
    with cf.ThreadPoolExecutor(2) as ex:
        print("thread_rt_us", round_trip_us(ex, 20_000 // scale), flush=True)
        print("thread_tput", throughput(ex, noop, 1_000_000 // scale), flush=True)
    with cf.ProcessPoolExecutor(2) as ex:
        print("process_rt_us", round_trip_us(ex, 5_000 // scale), flush=True)
        print("process_tput", throughput(ex, small, 100_000 // scale), flush=True)
    rounds = 2_000_000 // scale
    print("cpu_speedup", cpu_time(1, 8, rounds) / cpu_time(2, 8, rounds), flush=True)
    print("to_thread_rt_us", asyncio.run(to_thread_rt_us(20_000 // scale)), flush=True)


if __name__ == "__main__":
    main()
