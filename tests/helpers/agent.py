"""A collector :class:`Agent` on its own event loop in a thread (so that a test can write files,
rows or datagrams meanwhile), and a reader of what it put on ``logs.raw``."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus, LocalConsumer
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.file import FileSource
from logfactory.config import Config, NodeConfig, source_config
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry


class AgentRunner:
    """An Agent on its own event loop in a thread; :meth:`stop` is a clean stop, :meth:`crash`
    cancels it (no final commit). File sources rescan and poll fast, for short tests."""

    def __init__(self, config: Config, bus: LocalBus, checkpoint_interval: float = 0.1) -> None:
        self.producer = bus.producer()
        self.registry = StatsRegistry("test")
        self.agent = Agent(
            config, self.producer, self.registry, checkpoint_interval=checkpoint_interval
        )
        for src in self.agent.sources:
            if isinstance(src, FileSource):
                src.rescan_interval = 0.1
                src.poll_interval = 0.02
                src.rotate_grace = 0.3
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[Any] | None = None
        self._up = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._task = asyncio.current_task()
            self._up.set()
            await self.agent.run(self._stop)

        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            pass  # crash()
        except BaseException as exc:
            self.error = exc
        finally:
            self._up.set()

    def start(self) -> AgentRunner:
        self._thread.start()
        assert self._up.wait(10)
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.agent.wait_ready(), self._loop).result(10)
        return self

    @property
    def source(self) -> Any:
        return self.agent.sources[0]

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """A clean stop: the agent flushes the bus and commits the final positions."""
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._join()

    def crash(self) -> None:
        """Like a SIGKILL for positions: the agent is cancelled, no final checkpoint."""
        assert self._loop is not None
        assert self._task is not None
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._join()

    def _join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()
        self.producer.close()
        if self.error is not None:
            raise self.error


class Reader:
    """Everything on logs.raw so far, decoded."""

    def __init__(self, bus: LocalBus) -> None:
        self.consumer: LocalConsumer = bus.consumer(None, [RAW_TOPIC])
        self.records: list[Record] = []

    def poll(self) -> list[Record]:
        while msgs := self.consumer.poll(5000, timeout=0.05):
            self.records.extend(decode_record(m.value) for m in msgs)
        return self.records

    def wait_count(self, n: int, timeout: float = 10.0) -> list[Record]:
        wait_for(lambda: len(self.poll()) >= n, timeout, f"{n} records (have {len(self.records)})")
        return self.records

    def lines(self, path: Path | None = None) -> list[str]:
        """The lines read so far, of the file ``path`` only if given."""
        return [r.line for r in self.poll() if path is None or r.meta["path"] == str(path)]


def ids(records: list[Record]) -> list[int]:
    """The ``id`` column of records the SQL source wrote (one JSON row per line)."""
    return [int(json.loads(r.line)["id"]) for r in records]


# -- the file source --------------------------------------------------------------------------
def config_for(tmp_path: Path, logs: Path, **kw: Any) -> Config:
    """A node with one file source ``app`` tailing ``logs/*.log``."""
    source = source_config(type="file", name="app", paths=[str(logs / "*.log")], **kw)
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])


def write(path: Path, text: str | bytes, mode: str = "ab") -> None:
    with open(path, mode) as f:
        f.write(text.encode() if isinstance(text, str) else text)


def numbered(prefix: str, start: int, stop: int) -> str:
    return "".join(f"{prefix} line {i}\n" for i in range(start, stop))


def start(
    runners: list[AgentRunner], config: Config, bus: LocalBus, checkpoint_interval: float = 0.1
) -> AgentRunner:
    """Start an agent and list it in ``runners`` (the fixture stops what is still alive)."""
    agent = AgentRunner(config, bus, checkpoint_interval).start()
    runners.append(agent)
    return agent
