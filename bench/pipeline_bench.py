#!/usr/bin/env python3
"""The three-stage async-generator pipeline of pipeline_bench.cpp, in Python asyncio.

Prints "ns_per_item VALUE" (and "sum VALUE", which must match the C++ run's for the same n).
Usage: pipeline_bench.py N
"""
import asyncio
import sys
import time


async def source(n):
    for i in range(n):
        yield i


async def doubled(items):
    async for v in items:
        yield v * 2


async def plus_one(items):
    async for v in items:
        yield v + 1


async def main(n):
    start = time.perf_counter()
    total = 0
    async for v in plus_one(doubled(source(n))):
        total += v
    elapsed = time.perf_counter() - start
    print(f"ns_per_item {elapsed / n * 1e9:.3f}")
    print(f"sum {total}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
