"""Budget counters in Redis: one Lua script per reservation, shared by every process.

``RedisStore`` fails closed: when Redis cannot be reached, has no free connection within
``pool_timeout_s``, or has lost its counters, ``try_reserve`` raises ``BudgetStoreError`` and
no call goes out. Losing the counters (Redis restarted without persistence, a stale replica,
an eviction) is detected with an *epoch*: a hash written with the counters, carrying an id and
a generation that every script increments. A store that has seen an epoch and then finds none,
another one, or an older generation marks the budget as reset; from then on every process is
refused until an operator runs ``cfopt budget reconcile``, which rebuilds the counters from the
usage ledger (``cfopt.cost.ledger``). See docs/RELIABILITY.md for the Redis settings a budget
needs (AOF persistence, ``maxmemory-policy noeviction``).

>>> RedisStore("redis://:secret@127.0.0.1:6379/0", prefix="shop")   # never the URL: no password
RedisStore(prefix='shop')
"""
from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import BudgetStoreError, ConfigError
from .budget_store import DEFAULT_LEASE_S, Lease
from .ledger import UsageLedger, read_ledgers, rebuild

__all__ = ["RedisStore", "Reconciled", "reconcile", "TOMBSTONE_S"]

TOMBSTONE_S = 86400.0     # how long a swept lease is remembered, so a late settle counts once

# Both scripts first check the epoch. KEYS[1] epoch hash {id, how, gen}, KEYS[2] reset marker;
# ARGV[1] the epoch id this client knows ('' for none), ARGV[2] the highest generation it saw,
# ARGV[3] '1' if it may create an epoch when there is none. They return {code, epoch, gen}.
_EPOCH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function lost(why)
  redis.call('HSET', KEYS[2], 'since', tostring(now), 'why', why, 'lost_epoch', ARGV[1])
  return {-2, '', 0}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-2, '', 0} end
local epoch = redis.call('HGET', KEYS[1], 'id')
if not epoch then
  if ARGV[1] ~= '' then return lost('no epoch: the counters are gone') end
  if ARGV[3] ~= '1' then return lost('no epoch, but the usage ledger has recent entries') end
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'id', epoch, 'how', 'init', 'at', tostring(now), 'gen', 0)
elseif ARGV[1] ~= '' and epoch ~= ARGV[1] and redis.call('HGET', KEYS[1], 'how') ~= 'reconcile' then
  return lost('another epoch: the counters were re-created')
elseif epoch == ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') < tonumber(ARGV[2]) then
  return lost('an older generation: the counters went back in time')
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
"""

# KEYS[3] lease zset (id -> expiry), KEYS[4] lease hash (id -> 'L|X amount key...'),
# KEYS[5..] held keys. ARGV[5] ttl, [6] amount, [7] lease_s, [8] lease id, [9] tombstone_s,
# [10..] limits. A live lease is 'L ...'; a swept one becomes 'X ...' for tombstone_s, so a
# late settle knows its hold was already given back.
_RESERVE_LUA = _EPOCH_LUA + """
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local rec = redis.call('HGET', KEYS[4], id)
  if rec and string.sub(rec, 1, 1) == 'L' then
    local words = {}
    for w in string.gmatch(rec, '%S+') do words[#words + 1] = w end
    for i = 3, #words do redis.call('DECRBY', words[i], words[2]) end
    redis.call('HSET', KEYS[4], id, 'X' .. string.sub(rec, 2))
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[9]), id)
  else
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
local amount = tonumber(ARGV[6])
local n = #KEYS - 4
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[4 + i]) or '0') + amount > tonumber(ARGV[9 + i]) then
    return {i - 1, epoch, gen}
  end
end
local rec = 'L ' .. ARGV[6]
for i = 1, n do
  redis.call('INCRBY', KEYS[4 + i], ARGV[6])
  redis.call('EXPIRE', KEYS[4 + i], tonumber(ARGV[5]))
  rec = rec .. ' ' .. KEYS[4 + i]
end
redis.call('HSET', KEYS[4], ARGV[8], rec)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[8])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]))
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[5]))
return {-1, epoch, gen}
"""

# KEYS[3] lease zset, KEYS[4] lease hash, KEYS[5..] held keys then spent keys.
# ARGV[5] ttl, [6] actual, [7] how many held keys, [8] lease id ('' for none).
_SETTLE_LUA = _EPOCH_LUA + """
local actual, held = tonumber(ARGV[6]), 0
if ARGV[8] ~= '' then
  local rec = redis.call('HGET', KEYS[4], ARGV[8])
  if not rec then return {0, epoch, gen} end   -- settled already: count it once
  if string.sub(rec, 1, 1) == 'L' then held = tonumber(string.match(rec, '^L (%d+)')) end
  redis.call('HDEL', KEYS[4], ARGV[8])
  redis.call('ZREM', KEYS[3], ARGV[8])
end
local n = tonumber(ARGV[7])
for i = 5, #KEYS do
  local delta = actual
  if i - 4 <= n then delta = actual - held end
  redis.call('INCRBY', KEYS[i], delta)
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5]))
end
return {1, epoch, gen}
"""

_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class RedisStore:
    """Counters in Redis, shared by every process that uses the same URL and prefix.

    Connections come from a bounded pool: at most ``max_connections``, a caller waits up to
    ``pool_timeout_s`` for a free one, and every command has ``socket_timeout_s``. Each
    reservation and settlement is one Lua script. Counter keys expire after ``ttl_s`` (longer
    than a month). ``ledger`` (a path or ``UsageLedger``) records every hold and settlement
    so that ``cfopt budget reconcile`` can rebuild the counters after Redis lost them; every
    process of one prefix should write one (the same file, or one each).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "cfopt:budget",
                 ttl_s: int = 40 * 86400, max_connections: int = 32, pool_timeout_s: float = 5.0,
                 socket_timeout_s: float = 5.0, ledger: str | os.PathLike | UsageLedger | None = None,
                 client: Any = None) -> None:
        import redis  # only needed when Redis is used
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ConfigError(f"prefix must be 1-100 of A-Z a-z 0-9 _ . : -, got {prefix!r}")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections must be a positive integer, got {max_connections!r}")
        for name, value in (("pool_timeout_s", pool_timeout_s), ("socket_timeout_s", socket_timeout_s)):
            if not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        self.prefix, self.ttl_s = prefix, int(ttl_s)
        self.max_connections = max_connections
        self.ledger = ledger if isinstance(ledger, UsageLedger) or ledger is None else UsageLedger(ledger)
        if client is None:
            # Bounded and blocking: past max_connections a caller waits, then gets a clear error,
            # instead of redis-py's default pool opening connections until Redis refuses them.
            # One quick retry re-dials a connection Redis dropped (a restart) before giving up.
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=pool_timeout_s,
                socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
                retry=Retry(NoBackoff(), 1))
            client = redis.Redis(connection_pool=pool)
        self._r = client
        self._reserve = client.register_script(_RESERVE_LUA)
        self._settle = client.register_script(_SETTLE_LUA)
        self._epoch, self._gen = "", 0
        self._may_init: bool | None = None
        self._state = threading.Lock()
        self.ledger_failures = 0  # settle lines the ledger could not take (Redis still told)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"  # never the URL: it may carry a password

    def _k(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    @property
    def _meta(self) -> list[str]:
        return [self._k("epoch"), self._k("reset"), self._k("leases:due"), self._k("leases")]

    def _redis(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run one Redis operation; any failure becomes a ``BudgetStoreError``."""
        import redis
        try:
            return fn(*args, **kw)
        except redis.ConnectionError as e:
            if "No connection available" in str(e):
                raise BudgetStoreError(
                    f"budget store saturated: no free connection of {self.max_connections} "
                    "within the pool timeout; no call without a reservation",
                    reason="saturated") from None
            raise BudgetStoreError(f"budget store unreachable ({e}); no call without a "
                                   "reservation", reason="unreachable") from None
        except redis.TimeoutError as e:
            raise BudgetStoreError(f"budget store timed out ({e})", reason="timeout") from None
        except redis.RedisError as e:
            raise BudgetStoreError(f"budget store failed: {type(e).__name__}: {e}") from None

    def _epoch_args(self) -> list[Any]:
        with self._state:
            epoch, gen = self._epoch, self._gen
        if not epoch and self._may_init is None:
            # A store that never saw an epoch may create one, unless the ledger shows this
            # prefix was in use lately: then the counters were lost, not never there.
            recent = self.ledger is not None and self.ledger.has_recent(
                self.prefix, time.time() - self.ttl_s)
            self._may_init = not recent
        return [epoch, gen, "1" if self._may_init else "0", uuid.uuid4().hex, self.ttl_s]

    def _seen(self, reply: Sequence[Any]) -> int:
        code = int(reply[0])
        if code == -2:
            raise BudgetStoreError(
                f"budget counters under {self.prefix!r} were reset or rolled back; reservations "
                f"are refused until an operator runs `cfopt budget reconcile --prefix "
                f"{self.prefix} --ledger FILE`", reason="reset")
        epoch = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        with self._state:
            if epoch != self._epoch:
                self._epoch, self._gen = epoch, 0   # first sight, or adopted after a reconcile
            self._gen = max(self._gen, int(reply[2]))
        return code

    def try_reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int, *,
                    lease_s: float = DEFAULT_LEASE_S) -> tuple[int, str]:
        lease = uuid.uuid4().hex
        full = [self._k(k) for k in keys]
        reply = self._redis(self._reserve, keys=[*self._meta, *full],
                            args=[*self._epoch_args(), amount, lease_s, lease, TOMBSTONE_S, *limits])
        code = self._seen(reply)
        if code >= 0:
            return code, ""
        if self.ledger is not None:
            try:
                self.ledger.append(op="hold", prefix=self.prefix, lease=lease, amount=amount,
                                   keys=full, expires=round(time.time() + lease_s, 3))
            except OSError as e:  # a hold the ledger does not know could not be rebuilt: undo it
                self.settle(lease, keys, [], 0)
                raise BudgetStoreError(f"usage ledger {self.ledger.path}: {e}; no call without "
                                       "a recorded reservation", reason="ledger") from None
        return -1, lease

    def settle(self, lease: str | None, held_keys: Sequence[str], spent_keys: Sequence[str],
               actual: int) -> None:
        held, spent = [self._k(k) for k in held_keys], [self._k(k) for k in spent_keys]
        if self.ledger is not None and (actual or lease):
            try:  # first on disk: the money is recorded even if Redis never hears of it
                self.ledger.append(op="settle", prefix=self.prefix, lease=lease, actual=actual,
                                   held_keys=held, spent_keys=spent)
            except OSError:
                self.ledger_failures += 1
        reply = self._redis(self._settle, keys=[*self._meta, *held, *spent],
                            args=[*self._epoch_args(), actual, len(held), lease or ""])
        try:
            self._seen(reply)
        except BudgetStoreError:
            if self.ledger is None:
                raise
            # Reset: this settlement is in the ledger, and reconcile will count it from there.

    def get(self, key: str) -> int:
        return int(self._redis(self._r.get, self._k(key)) or 0)

    def first_time(self, key: str) -> bool:
        return bool(self._redis(self._r.set, self._k(f"seen:{key}"), 1, nx=True, ex=self.ttl_s))

    def leases(self) -> list[Lease]:
        due = self._redis(self._r.zrange, self._k("leases:due"), 0, -1, withscores=True)
        records = self._redis(self._r.hgetall, self._k("leases"))
        out = []
        for member, score in due:
            words = (records.get(member) or b"").decode().split()
            if words[:1] == ["L"]:
                out.append(Lease(member.decode(), int(words[1]), tuple(words[2:]), float(score)))
        return out

    def reset_state(self) -> dict[str, str] | None:
        """Why reservations are refused (the reset marker), or None when they are not."""
        marker = self._redis(self._r.hgetall, self._k("reset"))
        return {k.decode(): v.decode() for k, v in marker.items()} or None

    def server_time(self) -> float:
        sec, usec = self._redis(self._r.time)
        return sec + usec / 1e6

    def close(self) -> None:
        self._r.close()
        if self.ledger is not None:
            self.ledger.close()


@dataclass
class Reconciled:
    """What ``reconcile`` wrote (or would write, with ``dry_run``)."""

    prefix: str
    counters: dict[str, tuple[int, int]]   # key (without prefix) -> (before, after), nano-dollars
    live_leases: int
    settled: int
    expired_holds: int
    epoch: str
    was_reset: dict[str, str] | None

    def format(self) -> str:
        lines = [f"budget {self.prefix}: " + (f"reset ({self.was_reset.get('why', '?')})"
                                              if self.was_reset else "not reset")]
        for key, (before, after) in self.counters.items():
            lines.append(f"  {key:<40} ${before / 1e9:>12.6f} -> ${after / 1e9:>12.6f}")
        lines.append(f"  {self.settled} settlements, {self.live_leases} holds still within their "
                     f"lease, {self.expired_holds} unsettled holds past their lease (not counted)")
        lines.append(f"  epoch {self.epoch}")
        return "\n".join(lines)


def reconcile(store: RedisStore, ledgers: Sequence[str | os.PathLike] = (), *,
              from_zero: bool = False, force: bool = False, dry_run: bool = False) -> Reconciled:
    """Rebuild ``store``'s counters from ``ledgers`` and let reservations through again.

    Refuses unless the store is marked reset (or ``force``): on a live budget, rebuilding
    would race with the reservations in flight. ``from_zero`` restarts from empty counters
    when there is no ledger (the day's spend is then forgotten: an operator's decision).
    """
    if not ledgers and not from_zero:
        raise ConfigError("give the usage ledger(s) to rebuild from (--ledger FILE), or "
                          "--from-zero to accept that the counters are lost")
    was_reset = store.reset_state()
    if was_reset is None and not force:
        raise ConfigError(f"budget {store.prefix!r} is not marked reset; reconcile a live budget "
                          "only with force=True (--force), with its traffic stopped")
    now = store.server_time()
    rebuilt = rebuild(read_ledgers(ledgers, prefix=store.prefix), now=now)
    r = store._r
    existing = [k for pattern in ("held:*", "spent:*")
                for k in store._redis(lambda p: list(r.scan_iter(match=store._k(p), count=1000)),
                                      pattern)]
    before = {k.decode(): int(v or 0) for k, v in
              zip(existing, store._redis(r.mget, existing) if existing else [])}
    after = {} if from_zero else rebuilt.counters
    strip = len(store.prefix) + 1
    counters = {key[strip:]: (before.get(key, 0), after.get(key, 0))
                for key in sorted(set(before) | set(after))}
    epoch = uuid.uuid4().hex
    if not dry_run:
        pipe = r.pipeline(transaction=True)   # MULTI/EXEC: all of it or nothing
        if existing:
            pipe.delete(*existing)
        pipe.delete(store._k("leases"), store._k("leases:due"), store._k("reset"))
        for key, value in after.items():
            pipe.set(key, value, ex=store.ttl_s)
        for lease, (amount, keys, expires) in ({} if from_zero else rebuilt.leases).items():
            pipe.hset(store._k("leases"), lease, " ".join(["L", str(amount), *keys]))
            pipe.zadd(store._k("leases:due"), {lease: expires})
        pipe.delete(store._k("epoch"))
        pipe.hset(store._k("epoch"), mapping={"id": epoch, "how": "reconcile", "at": str(now),
                                              "gen": 0})
        pipe.expire(store._k("epoch"), store.ttl_s)
        store._redis(pipe.execute)
    return Reconciled(store.prefix, counters, 0 if from_zero else len(rebuilt.leases),
                      rebuilt.settled, rebuilt.expired, epoch, was_reset)
