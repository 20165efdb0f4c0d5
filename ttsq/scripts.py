"""Every Lua script ttsq runs in Redis, in one place: each is one atomic step; those a job's run uses are fenced
(the run's lock token and the job's state are checked in the same step as the write).

Scripts that read job records compare JSON-encoded field values (see ``ttsq.models.encode_fields``), so the
encoded forms are built here from the statuses rather than written out by hand.
"""

from __future__ import annotations

import json

from .models import ACTIVE_STATUSES, JobStatus

_ACTIVE_TEST = " or ".join(f"status == '{json.dumps(s.value)}'" for s in ACTIVE_STATUSES)
_RUNNING = json.dumps(JobStatus.running.value)
PUBLISHED_RECORD_MAX_BYTES = 16 * 1024
"""The largest ended record END_JOB publishes to waiting long polls (a short job's is ~2 KB)."""

REFRESH_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
"""KEYS: lock. ARGV: token, ttl ms. Extends the lock only for the run that holds it."""

RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
"""KEYS: lock. ARGV: token. Drops the lock only for the run that holds it."""

HAND_OFF = f"""
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
if redis.call('hget', KEYS[2], 'status') ~= '{_RUNNING}' then return 0 end
redis.call('hset', KEYS[2], 'in_task', ARGV[2], 'attempts', ARGV[3])
redis.call('lpush', KEYS[3], ARGV[4])
return 1
"""
"""KEYS: lock, record, the job's queue. ARGV: token, encoded in_task and attempts, the next task's message. Ends a
task's turn and queues the next in one step (issue 12: one round trip where three were, and no moment when the job
waits between two tasks with no message queued); only a running job is touched (a canceled one keeps its record as
it ended, a purged one is never recreated). Not idempotent: when redis-py sends it again after a lost answer, the
second finds no lock and answers 0, and the run reports a lost lock for a hand-off that was made (one message)."""

TAKE_JOB = f"""
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {{0}} end
local f = redis.call('hmget', KEYS[2], 'status', 'attempts', 'restarts', 'started_at', 'segments_total')
local status = f[1]
local attempts = tonumber(f[2] or '0') or 0
if not (status and ({_ACTIVE_TEST})) or attempts >= tonumber(ARGV[5]) then
  return {{1, redis.call('hgetall', KEYS[2])}}
end
local restarts = tonumber(f[3] or '0') or 0
if attempts > 0 then restarts = restarts + 1 end
local started = f[4]
if not started or started == 'null' then started = ARGV[3] end
redis.call('hset', KEYS[2], 'in_task', 'true', 'status', '{_RUNNING}', 'started_at', started, 'heartbeat_at', ARGV[3],
  'worker', ARGV[4], 'attempts', attempts + 1, 'restarts', restarts)
redis.call('publish', KEYS[3], 'changed')
local text = false
if not f[5] or f[5] == 'null' then text = redis.call('get', KEYS[4]) end
return {{2, redis.call('hgetall', KEYS[2]), text}}
"""
"""KEYS: lock, record, events channel, text. ARGV: token, lock TTL ms, now and the worker's name (JSON-encoded),
the most attempts. A run's start in one round trip (issue 12): the job's lock and, only if that was free, the job
marked running for the run (its first start kept, its attempt counted; a task started before that did not finish is
a restart) while it is queued or running with attempts left; then the record as it stands, and an unplanned job's
text. Answers 0 (the lock is another run's), 1 and the record (left as it was: canceled, ended, out of attempts, or
gone), or 2, the record and the text (or false)."""

FENCED_UPDATE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local status = redis.call('hget', KEYS[2], 'status')
if not status then return 0 end
local allowed = tonumber(ARGV[2])
local ok = false
for i = 3, 2 + allowed do if ARGV[i] == status then ok = true end end
if not ok then return 0 end
local fields = {}
for i = 3 + allowed, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('hset', KEYS[2], unpack(fields))
redis.call('publish', KEYS[3], 'changed')
return 1
"""
"""KEYS: lock, record, events channel. ARGV: token, n, n encoded statuses, then field/value pairs. Writes the fields
only for the run holding the lock, only while the record exists with one of the statuses: a run that lost its lock
(paused past the TTL, say) changes nothing, and a job removed meanwhile is never recreated as a fragment."""

FINISH_SEGMENT = f"""
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('hget', KEYS[3], 'status') ~= '{_RUNNING}' then return 0 end
if redis.call('llen', KEYS[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('rpush', KEYS[2], ARGV[3])
if #ARGV > 3 then
  redis.call('hset', KEYS[3], unpack(ARGV, 4, #ARGV))
  redis.call('publish', KEYS[4], 'changed')
end
return 1
"""
"""KEYS: lock, done list, record, events channel. ARGV: token, segment index, segment record, then field/value pairs
of the job's record. Appends a segment's record once, in order, and writes the job's fields (progress, synthesis
time) in the same step, for the running job's lock holder only."""

SAVE_PLAN = f"""
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('hget', KEYS[2], 'status') ~= '{_RUNNING}' then return 0 end
redis.call('del', KEYS[3], KEYS[4])
local chunks = tonumber(ARGV[2])
local first_segment = 4 + chunks
local first_field = first_segment + tonumber(ARGV[3])
for first = 4, first_segment - 1, 1000 do
  redis.call('rpush', KEYS[3], unpack(ARGV, first, math.min(first + 999, first_segment - 1)))
end
for first = first_segment, first_field - 1, 1000 do
  redis.call('rpush', KEYS[4], unpack(ARGV, first, math.min(first + 999, first_field - 1)))
end
if #ARGV >= first_field then
  redis.call('hset', KEYS[2], unpack(ARGV, first_field, #ARGV))
  redis.call('publish', KEYS[5], 'changed')
end
return 1
"""
"""KEYS: lock, record, chunks list, segments list, events channel. ARGV: token, number of chunks, number of segments,
the chunks, the segments, then field/value pairs of the job's record. Stores a plan and the job's fields that go
with it in one step, for the running job's lock holder only, in batches (Lua's unpack has a limit)."""

ACTIVE_STATUS_COUNTS = """
local counts = {}
for _, id in ipairs(redis.call('smembers', KEYS[1])) do
  local status = redis.call('hget', ARGV[1] .. id, 'status')
  if status then counts[status] = (counts[status] or 0) + 1 end
end
local flat = {}
for status, n in pairs(counts) do flat[#flat + 1] = status; flat[#flat + 1] = n end
return flat
"""
"""KEYS: the active set. ARGV: job record prefix. Counts the unfinished jobs' statuses in one round trip."""

SPEECH_APPEND = """
if redis.call('exists', KEYS[2]) == 1 then return -1 end
redis.call('xadd', KEYS[1], '*', unpack(ARGV, 2))
redis.call('pexpire', KEYS[1], ARGV[1])
return redis.call('xlen', KEYS[1])
"""
"""KEYS: a speech request's stream, its cancel flag. ARGV: ttl ms, then the entry's field/value pairs. Appends only
while the request stands (-1 once the client has gone, so a stream the API removed is never recreated); returns the
entries not yet read, for the worker's back-pressure."""

INCREMENTS = """
local function add_metrics(from)
  if #ARGV > from then redis.call('rpush', ARGV[from], cjson.encode({unpack(ARGV, from + 1, #ARGV)})) end
end
"""
"""A script's trailing ARGV from index ``from``: the pending list's name, then (hash, field, amount) triples of metric
increments (see ``ttsq.metrics.record.script_args``), queued as one JSON entry: one command in the job's step
rather than one per field (a job's end has 13); ``FOLD_METRICS`` adds them to the hashes later."""

FOLD_METRICS = """
local entries = redis.call('lrange', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #entries == 0 then return 0 end
redis.call('ltrim', KEYS[1], #entries, -1)
local totals, floats, order = {}, {}, {}
for _, entry in ipairs(entries) do
  local ok, adds = pcall(cjson.decode, entry)
  if ok and type(adds) == 'table' then
    for i = 1, #adds - 2, 3 do
      local key, field, text = adds[i], adds[i + 1], adds[i + 2]
      local amount = type(text) == 'string' and tonumber(text)
      if type(key) == 'string' and type(field) == 'string' and amount and amount == amount
          and math.abs(amount) ~= math.huge then
        local id = key .. '\\n' .. field
        if not totals[id] then
          totals[id] = 0
          order[#order + 1] = {key, field, id}
        end
        totals[id] = totals[id] + amount
        if string.find(text, '[.eE]') then floats[id] = true end
      end
    end
  end
end
for _, add in ipairs(order) do
  if floats[add[3]] then
    redis.pcall('hincrbyfloat', add[1], add[2], string.format('%.17g', totals[add[3]]))
  else
    redis.pcall('hincrby', add[1], add[2], string.format('%d', totals[add[3]]))
  end
end
return #entries
"""
"""KEYS: the pending list. ARGV: the most entries to take. Takes up to that many queued entries off the list and adds
them into the hashes, one HINCRBY(FLOAT) per field however many jobs share it, in one step; the number taken. An
amount with a point or an exponent is a float. What cannot be added (an unreadable entry, a field that is not a
finite number, a key of another type) is dropped: a bad entry costs its counts, never the fold, and nothing is
ever added twice (the entries leave the list before anything is added). The hashes are named by value, not in
KEYS: fine on one Redis, not on Redis Cluster (as CREATE_JOB's limit)."""

CREATE_JOB = (
    INCREMENTS
    + f"""
if redis.call('exists', KEYS[2]) == 1 then return 1 end
local limit = tonumber(ARGV[6])
if limit > 0 then
  for _, id in ipairs(redis.call('smembers', KEYS[6])) do
    local status = redis.call('hget', ARGV[5] .. id, 'status')
    if not (status and ({_ACTIVE_TEST})) then redis.call('srem', KEYS[6], id) end
  end
  if redis.call('scard', KEYS[6]) >= limit then return 0 end
  redis.call('sadd', KEYS[6], ARGV[2])
end
redis.call('set', KEYS[1], ARGV[1])
local last = 8 + tonumber(ARGV[8])
redis.call('hset', KEYS[2], unpack(ARGV, 9, last))
redis.call('sadd', KEYS[3], ARGV[2])
redis.call('zadd', KEYS[4], ARGV[3], ARGV[2])
if ARGV[7] ~= '' then redis.call('lpush', KEYS[5], ARGV[7]) end
if KEYS[7] then redis.call('expire', KEYS[7], ARGV[4]) end
add_metrics(last + 1)
return 1
"""
)
"""KEYS: text, record, active set, owner's jobs, the speaker's queue, the owner's active set (its concurrent-jobs
limit), and the Idempotency-Key's claim if any. ARGV: text, job id, created_at, seconds to keep the claim, job
record prefix, the owner's limit (0: none), the job's first task message ('': none), the number of record items,
the record's field/value pairs, then the metrics' pending list and increments (INCREMENTS). Records a new job,
counted and queued, in one step, or nothing (0) when its owner is at the limit; once only (a call redis-py sends
again after a lost answer finds the record and returns 1): that check drops the owner's ended
(or vanished) jobs from the set first, and two API processes can't both take the last slot. Records are read by
computed names there: fine on one Redis, not on Redis Cluster."""

END_JOB = (
    INCREMENTS
    + f"""
if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local status = redis.call('hget', KEYS[2], 'status')
if not status then return 0 end
local allowed = tonumber(ARGV[5])
local ok = false
for i = 6, 5 + allowed do if ARGV[i] == status then ok = true end end
if not ok then return 0 end
local first = 7 + allowed
local last = 6 + allowed + tonumber(ARGV[6 + allowed])
redis.call('hset', KEYS[2], unpack(ARGV, first, last))
redis.call('srem', KEYS[3], ARGV[2])
redis.call('zadd', KEYS[4], ARGV[3], ARGV[2])
if ARGV[4] ~= '' then redis.call('zadd', KEYS[5], ARGV[4], ARGV[2]) end
local ended = cjson.encode(redis.call('hgetall', KEYS[2]))
if #ended > {PUBLISHED_RECORD_MAX_BYTES} then ended = 'changed' end
redis.call('publish', KEYS[6], ended)
if ARGV[1] ~= '' then redis.call('del', KEYS[1]) end
add_metrics(last + 1)
return 1
"""
)
"""KEYS: lock, record, active set, retention set, webhook outbox, events channel. ARGV: the run's lock token ('':
not fenced, a cancel), job id, the end's time, when its webhook is due ('': no webhook), n and n encoded statuses
the job may be in, the number of record items, the record's field/value pairs, then the metrics' pending list and
increments (INCREMENTS). The one end of a job: the outcome, out of the active set, into retention and the outbox,
counted, told to waiters (the message is the ended record, as a JSON array of field/value pairs, up to
PUBLISHED_RECORD_MAX_BYTES: a long poll answers with it and reads nothing; a bigger one, a book's with its marks, goes
to every API process's subscription as "changed", and a poll reads it), and the run's lock dropped, all in one step;
0 (nothing written) if the lock or the status is not as given. The metrics go last: Lua does not roll back, so a bad
entry could cost a count, never the end itself."""
