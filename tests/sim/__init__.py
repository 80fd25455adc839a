"""The deterministic seeded fault simulator (see docs/simulator.md).

Servers (``actors.core.node.ServerNode``) and client sessions
(``actors.core.session.ClientSessionCore``) run on an in-memory network with
per-host drifting clocks and crashable storage; one seed fixes every delay,
drop, fault and workload choice, and invariants are checked after every event.

* ``net``       the network: delays, drops, duplicates, partitions (one-way too);
* ``world``     hosts, clocks, storage, the scheduler and the workload;
* ``faults``    the seeded schedule generator;
* ``scenario``  the replayable step format and named scenarios;
* ``checks``    S1, the table invariant, S2, S3, S4 and L1;
* ``trace``     the readable trace and its hash;
* ``run``       ``python -m tests.sim.run --seeds 1000``.
"""
