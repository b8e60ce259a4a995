"""Helpers the test suites share, one copy each (issue 14 item 7).

Test modules (``test_*.py``) never import each other and conftest files hold only fixtures:
whatever two places need lives here. ``tests/unit/test_test_layout.py`` keeps it that way.

- ``waiting``: :func:`wait_for`, a condition polled against a deadline
- ``ports``: free TCP/UDP ports and "is something listening there"
- ``nodes``: ``logfactory`` subprocesses (start, stop, kill) and the demo config in a sandbox
- ``bus``: reading topics back (``drain``, ``read_all``, ``key_for``, a node's topic by config)
- ``contract``: the bus contract's factory protocol and its child process (``bus_child.py``)
- ``worker``: a real factory worker run batch by batch over a local bus
- ``agent``: a collector Agent on its own loop in a thread, and a reader of ``logs.raw``
- ``sources``: the network sources' harness (an agent around a scenario, on asyncio and uvloop)
- ``clients``: the HTTP API on a local bus through starlette's TestClient
- ``bus_damage``: a local bus with history, damaged on purpose (unit and e2e repair tests)
- ``crash_traffic``: the crash matrix's traffic and its independent model of the outputs
- ``writer``: a file writer process that reopens on SIGHUP, as a logrotate'd daemon does
- ``store_data``: deterministic stored documents (logs and events, varied text and fields)
- ``store_oracle``: a query tree evaluated by brute force: the reference every store engine meets
"""
