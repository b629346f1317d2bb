"""One world's settings, drawn from its seed: the original draw, and the features added since.

Every feature added after the first draw comes from a random stream of its own (named by the
seed and the feature), so a seed's original world (the pinned regression seeds' too) stays what
it was; a world whose features are all off runs exactly as before they existed.
"""

from __future__ import annotations

import random

import attrs

from aiofinaccess import ClientCredentials, Oidc, Provider
from aiofinaccess.stores import Replication

EPOCH = 1_800_000_000.0

CLIENT_ID = "sim-client"
CLIENT_SECRET = "sim-client-secret"
#: Every client the simulated IdP knows: id -> secret.
CLIENTS = {
    CLIENT_ID: CLIENT_SECRET,
    "sim-client-b": "sim-client-b-secret",
    "sim-client-c": "sim-client-c-secret",
}
CREDENTIALS = ClientCredentials(CLIENT_ID, CLIENT_SECRET)

PROVIDER = Oidc.endpoints(
    name="idp",
    token_url="https://idp.sim/token",
    revocation_url="https://idp.sim/revoke",
    logout_url="https://idp.sim/logout",
)
# A finAPI-like provider: client_credentials (the same token reissued until it expires), and in
# some worlds user tokens by the password grant whose refresh tokens do not rotate.
CLIENT_PROVIDER = Oidc.endpoints(
    name="fin", token_url="https://fin.sim/token", rotates_refresh_tokens=False
)
#: More user providers for fleet worlds: another client of the same IdP, and another realm.
MORE_PROVIDERS = (
    Oidc.endpoints(
        name="idp-b",
        token_url="https://idp.sim/token",
        revocation_url="https://idp.sim/revoke",
        logout_url="https://idp.sim/logout",
    ),
    Oidc.endpoints(name="idp-c", token_url="https://idp.sim/realms/c/token"),
)
#: The client each user provider's sets belong to (the second app of a two-app world uses
#: ``SECOND_APP_CLIENT`` for "idp").
PROVIDER_CLIENTS = {"idp": CLIENT_ID, "idp-b": "sim-client-b", "idp-c": "sim-client-c"}
SECOND_APP_CLIENT = "sim-client-c"
PROVIDERS = {p.name: p for p in (PROVIDER, CLIENT_PROVIDER, *MORE_PROVIDERS)}


def credentials(client_id: str) -> ClientCredentials:
    return ClientCredentials(client_id, CLIENTS[client_id])


@attrs.frozen
class Config:
    """One world's settings, all drawn from its seed."""

    processes: int
    users: int
    duration: float
    access_ttl: float
    token_timeout: float
    lease_ttl: float
    max_concurrent: int
    idp_faults: float
    store_faults: float
    crashes_per_minute: float
    restarts_per_minute: float
    outages: int
    calls_per_second: float
    keep_alive: bool
    skew: float
    # The refresh duty: "off" (a store without it: each process plans its own sets), "all"
    # (every process claims due sets from the store) or "mixed" (process 0 claims; the others
    # claim or only serve, with a working set of `working_set` entries or unbounded).
    duty: str = "off"
    working_set: int | None = None
    duty_poll: float = 1.0
    duty_batch: int = 100
    duty_gather: float = 0.1
    # Keycloak's "Refresh Token Max Reuse" of the IdP (see idp.py): 0, or 1 in some worlds.
    idp_max_reuse: int = 0
    # The store: the simulated one, or a real one on virtual time (fix-simstores).
    store_impl: str = "sim"

    @classmethod
    def draw(cls, rng: random.Random) -> Config:
        lease_ttl = rng.choice([1.5, 3.0, 10.0])
        return cls(
            processes=rng.choice([1, 2, 2, 3, 3, 4]),
            users=rng.randint(1, 4),
            duration=rng.uniform(35.0, 100.0),
            access_ttl=rng.choice([4.0, 10.0, 30.0]),
            token_timeout=rng.choice([1.0, 2.0, 4.0]),
            lease_ttl=lease_ttl,
            max_concurrent=rng.choice([1, 2, 16]),
            idp_faults=rng.choice([0.0, 0.05, 0.2]),
            store_faults=rng.choice([0.0, 0.02, 0.1]),
            crashes_per_minute=rng.choice([0.0, 0.5, 2.0]),
            restarts_per_minute=rng.choice([0.0, 0.5]),
            outages=rng.choice([0, 0, 1, 3]),
            calls_per_second=rng.choice([0.5, 2.0, 5.0]),
            keep_alive=rng.random() < 0.5,
            skew=rng.choice([0.0, 0.2]),
            duty=rng.choice(["off", "all", "mixed"]),
            working_set=rng.choice([None, 1, 2]),
            duty_poll=rng.choice([0.2, 1.0]),
            duty_batch=rng.choice([1, 100]),
        )

    @classmethod
    def for_seed(cls, seed: int, rng: random.Random) -> Config:
        """The world's settings: the original draw from ``rng``, and the later ones."""
        # duty_gather came later: it has a stream of its own, so every seed's world (the
        # pinned ones of the regression tests too) stays what it was.
        gather = random.Random(f"{seed}:gather").choice([0.01, 0.1, 0.5])
        reuse = 1 if random.Random(f"{seed}:reuse").random() < 0.3 else 0
        from tests.simulation.real_stores import store_impl  # noqa: PLC0415  (fakeredis: lazily)

        return attrs.evolve(
            cls.draw(rng), duty_gather=gather, idp_max_reuse=reuse, store_impl=store_impl(seed)
        )


@attrs.frozen
class Features:
    """What a world adds to the original draw (each off by default, each from its own stream).

    * ``providers``: the user providers (``idp`` always; in fleet worlds ``idp-b``, another
      client of the same IdP, and ``idp-c``, another realm), with ``users`` users each;
    * ``subsets``: per process number, the user providers it registers (``None``: all);
      process 0 registers all;
    * ``second_app``: a second application with its own client registers ``idp`` too and
      logs its own users in through it, on the same store (processes ``>= second_app``): each
      user set records its client, and no process uses or renews another client's (I8);
    * ``junk``: due entries whose record is gone (orphans) and of providers nobody serves;
    * ``rollbacks``: times the store loses its acknowledged writes since a snapshot;
    * ``grant_chaos``: forgets, revocations and logouts a minute, during the run;
    * ``pauses``: process freezes a minute (every store call, sleep and send waits);
      ``pause_max``: their longest; ``clock_skew``: a wall clock off by up to this many
      seconds; ``clock_steps``: steps of a wall clock a minute (NTP); ``pause_sends``: the
      share of token requests whose process freezes just before the request leaves (for
      ``token_timeout`` plus half to one and a half leases);
    * ``finapi_users``: users of the finAPI-like provider (password grant, refresh tokens
      that do not rotate), renewed with the password when their refresh token is gone;
    * ``refresh_ttl``: Keycloak's SSO Session Idle (refresh tokens that run out): a session
      not refreshed for this long ends, and its set must leave the duty.
    * ``idle_after``: ``Schedule.idle_after`` (0: the default, never reached in a world): some
      users stop calling for a while or for good (idleness.py), and the fleet must leave their
      sets alone unless the app keeps them alive (``Config.keep_alive``, which matters where
      refresh tokens run out: half of these worlds draw a ``refresh_ttl`` of their own);
    * ``replication``: the durability option of a replicated store (``stores.Replication``), in
      half of the rollback worlds: a write counts as stored only once the replica has it, so
      a failover may lose only writes the store did not acknowledge (durability.py).
    """

    providers: tuple[str, ...] = ("idp",)
    users: dict[str, int] = attrs.Factory(dict)
    subsets: dict[int, tuple[str, ...]] = attrs.Factory(dict)
    second_app: int | None = None
    junk: bool = False
    rollbacks: int = 0
    grant_chaos: float = 0.0
    pauses: float = 0.0
    pause_max: float = 0.0
    clock_skew: float = 0.0
    clock_steps: float = 0.0
    finapi_users: int = 0
    refresh_ttl: float = 0.0
    pause_sends: float = 0.0
    idle_after: float = 0.0
    replication: Replication | None = None

    @classmethod
    def draw(cls, seed: int, config: Config, *, idle_and_replicas: bool = True) -> Features:
        """The features of ``seed``'s world (without ``idle_after`` and ``replication``, as
        before they existed, unless ``idle_and_replicas``)."""
        providers: tuple[str, ...] = ("idp",)
        users: dict[str, int] = {}
        subsets: dict[int, tuple[str, ...]] = {}
        second_app = None
        junk = False
        fleet = random.Random(f"{seed}:fleet")
        if fleet.random() < 0.3:
            providers = ("idp", *fleet.sample(["idp-b", "idp-c"], fleet.randint(1, 2)))
            users = {name: fleet.randint(1, 2) for name in providers[1:]}
            for number in range(1, config.processes):
                if fleet.random() < 0.5:
                    subsets[number] = tuple(name for name in providers if fleet.random() < 0.5) or (
                        fleet.choice(providers),
                    )
            junk = config.duty != "off" and fleet.random() < 0.7
        apps = random.Random(f"{seed}:clients")
        if config.processes > 1 and apps.random() < 0.1:
            second_app = apps.randint(1, config.processes - 1)
        rollback = random.Random(f"{seed}:rollback")
        rollbacks = rollback.choice([1, 1, 2]) if rollback.random() < 0.15 else 0
        if config.store_impl != "sim":  # junk and rollbacks reach into the simulated store
            junk, rollbacks = False, 0
        chaos = random.Random(f"{seed}:grants")
        grant_chaos = chaos.choice([1.0, 3.0]) if chaos.random() < 0.2 else 0.0
        time = random.Random(f"{seed}:time")
        pauses = pause_max = clock_skew = clock_steps = 0.0
        if time.random() < 0.15:
            pauses = time.choice([0.0, 1.0, 3.0])
            pause_max = time.choice([0.5, 2.0])
            clock_skew = time.choice([0.0, 2.0, 5.0])
            clock_steps = time.choice([0.0, 1.0])
        pause_sends = 0.0
        sends = random.Random(f"{seed}:pause-sends")
        if sends.random() < 0.1:
            pause_sends = sends.choice([0.05, 0.2])
        fin = random.Random(f"{seed}:finapi")
        finapi_users = fin.randint(1, 2) if fin.random() < 0.15 else 0
        refresh = random.Random(f"{seed}:refresh")
        refresh_ttl = 0.0
        if refresh.random() < 0.1:
            refresh_ttl = refresh.choice([0.5, 2.0]) * config.access_ttl
        if config.store_impl == "sqlite":  # one file, one machine: one wall clock for all
            clock_skew = clock_steps = 0.0
        idle = random.Random(f"{seed}:idle")
        idle_after = 0.0
        if idle_and_replicas and config.store_impl == "sim" and idle.random() < 0.2:
            idle_after = idle.choice([3.0, 6.0, 12.0])
            if not refresh_ttl and idle.random() < 0.5:
                refresh_ttl = idle.choice([1.0, 2.0]) * config.access_ttl
        durable = random.Random(f"{seed}:durable")
        replication = None
        if idle_and_replicas and rollbacks and durable.random() < 0.5:
            replication = Replication(
                replicas=1, timeout=durable.choice([0.5, 1.0]), fsync=durable.random() < 0.3
            )
        return cls(
            idle_after=idle_after,
            replication=replication,
            pause_sends=pause_sends,
            refresh_ttl=refresh_ttl,
            providers=providers,
            users=users,
            subsets=subsets,
            second_app=second_app,
            junk=junk,
            rollbacks=rollbacks,
            grant_chaos=grant_chaos,
            pauses=pauses,
            pause_max=pause_max,
            clock_skew=clock_skew,
            clock_steps=clock_steps,
            finapi_users=finapi_users,
        )


__all__ = [
    "CLIENTS",
    "CLIENT_PROVIDER",
    "CREDENTIALS",
    "EPOCH",
    "PROVIDER",
    "PROVIDERS",
    "Config",
    "Features",
    "Provider",
    "credentials",
]
