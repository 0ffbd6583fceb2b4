"""The service's helper processes (explanations, the challenger's shadow): spawned, at the lowest
CPU priority, gone when the service is.

A child at nice 19 takes only the CPU that prices leave idle, and holds no lock the service's
threads need. Spawn, not fork: the service has threads running, and a fork would copy their held
locks.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from price_alchemy_assets.model.bundle import limit_blas_threads


def low_priority_process() -> ProcessPoolExecutor:
    """A pool of one such child."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_child_started)


def _child_started() -> None:
    os.nice(19)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the service stops us
    limit_blas_threads()
    threading.Thread(target=_exit_with_the_service, args=(os.getppid(),), daemon=True).start()


def _exit_with_the_service(service_pid: int) -> None:
    """A service killed outright (SIGKILL, out of memory) cannot stop us: go when it is gone."""
    while os.getppid() == service_pid:
        time.sleep(1)
    os._exit(0)
