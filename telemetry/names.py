"""Every project-specific metric and attribute name, in one place.

Standard names come from the OpenTelemetry semantic conventions: the stable ones are imported from
``opentelemetry.semconv.attributes`` (here ``error.type``; ``http.*``, ``url.*``, ``service.*`` where
they are used), the incubating ``gen_ai.*`` ones are spelled here because the semconv package keeps
them in a private ``_incubating`` module. What no convention covers is prefixed ``sales_agent.``.
Dashboards, alert rules and tests refer to these names in their Prometheus form: dots become
underscores, the unit is appended (``s`` -> ``_seconds``, ``By`` -> ``_bytes``; ``1`` and
``{annotations}`` add nothing) and counters end in ``_total``.

Cardinality rule: ``session.id`` and ``call.id`` are span/log attributes only. They never appear
on a metric; ``METRIC_FORBIDDEN_ATTRIBUTES`` lists them and the metric Views drop them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.semconv.attributes import error_attributes

# --- Attributes (span, log and, where bounded, metric) ------------------------------------------
TENANT_ID: Final = "tenant.id"
SESSION_ID: Final = "session.id"  # spans/logs only
CALL_ID: Final = "call.id"  # spans/logs only
OPERATION: Final = "operation"  # tool or client operation name, e.g. "capture_basic_info"
OUTCOME: Final = "outcome"  # ok | error | ... (each metric documents its values)
ERROR_TYPE: Final = error_attributes.ERROR_TYPE  # "error.type": a code from ERROR_TYPES below
ERROR_CATEGORY: Final = "error.category"  # validation | dependency | internal
ERROR_MESSAGE: Final = "error.message"  # semconv; spans only: our own status message (span_status.py)
DEPENDENCY: Final = "dependency"  # crm | calendar | llm | outbox | otlp ...

# GenAI semantic conventions (used on spans and as bounded metric labels)
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # input | output

# LLM fallback chain
LLM_ATTEMPT: Final = "sales_agent.llm.attempt"  # 1-based position of the attempt within a turn
LLM_CHAIN_POSITION: Final = "sales_agent.llm.chain_position"  # 0-based position of the provider
FALLBACK_FROM: Final = "fallback.from"
FALLBACK_TO: Final = "fallback.to"
FALLBACK_REASON: Final = "fallback.reason"  # the error.type's family: see agent/llm/errors.py
FALLBACK_EVENT: Final = "gen_ai.fallback"  # span event name

# Resilience
RETRY_ATTEMPT: Final = "retry.attempt"
RETRY_EVENT: Final = "retry"  # span event name
RETRY_AFTER: Final = "retry.after_s"  # span events only: wait the server asked for (Retry-After header)
BREAKER_FROM: Final = "circuit_breaker.from_state"
BREAKER_TO: Final = "circuit_breaker.to_state"
IDEMPOTENCY_KEY: Final = "sales_agent.idempotency_key"  # spans only
OUTBOX_STEP: Final = "outbox.step"  # add | claim | complete | release | park | read | requeue
OUTBOX_TAKEOVER_REASON: Final = "outbox.takeover_reason"  # lease_expired | owner_gone
COOLDOWN_STEP: Final = "cooldown.step"  # read | record_failure | record_success (shared cooldowns)

# Sessions and business
SESSION_OUTCOME: Final = "session.outcome"  # completed | expired | idle | evicted | error
SESSION_REJECT_REASON: Final = "session.reject_reason"  # capacity | tenant_capacity (sessions.rejected)
CALL_OUTCOME: Final = "call.outcome"  # converted | not_interested | callback | dropped | failed | error
LEAD_BAND: Final = "lead.band"  # hot | warm | cold
HEALTH_CHECK: Final = "health.check"  # check name
TELEMETRY_SIGNAL: Final = "telemetry.signal"  # traces | metrics | logs

# Voice: speech chains and turns (the turn attributes are also bounded metric labels)
SPEECH_ATTEMPT: Final = "sales_agent.speech.attempt"  # span attribute: 1-based attempt within a request
SPEECH_REPLAYED: Final = "sales_agent.tts.replayed"  # span attribute: a cut sentence spoken again
TURN_MODE: Final = "sales_agent.turn.mode"  # text | voice
TURN_STAGE: Final = "sales_agent.turn.stage"  # endpointing | stt | llm | tools | tts
UNANSWERED_REASON: Final = "sales_agent.turn.unanswered_reason"  # empty_transcript | stt_failed | call_ended
CALL_END_REASON: Final = "sales_agent.call.end_reason"  # span attribute: stt_unavailable | tts_unavailable

# Attributes whose values the project itself produces - bounded vocabularies, generated ids, numbers -
# and never carry user input: PII redaction leaves them unscanned (telemetry/redaction.py). Not call.id
# (in the LiveKit worker it is the room name, which a telephony integration may build from the caller's
# number). Keys carrying user data are named with a `pii` segment instead, as LiveKit's `lk.pii.*`
# are (PII_SEGMENT): redaction drops their values whole, without scanning them.
SAFE_ATTRIBUTES: Final = frozenset(
    {
        TENANT_ID, SESSION_ID, OPERATION, OUTCOME, ERROR_TYPE, ERROR_CATEGORY, DEPENDENCY,
        GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL,
        GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_OUTPUT_TOKENS, GEN_AI_TOKEN_TYPE, LLM_ATTEMPT,
        LLM_CHAIN_POSITION, FALLBACK_FROM, FALLBACK_TO, FALLBACK_REASON, RETRY_ATTEMPT, RETRY_AFTER,
        BREAKER_FROM, BREAKER_TO, IDEMPOTENCY_KEY, SESSION_OUTCOME, SESSION_REJECT_REASON,
        CALL_OUTCOME, LEAD_BAND, HEALTH_CHECK, TELEMETRY_SIGNAL,
        SPEECH_ATTEMPT, SPEECH_REPLAYED, TURN_MODE, TURN_STAGE, UNANSWERED_REASON, CALL_END_REASON,
        # HTTP semantic conventions whose values are methods, codes and route templates.
        "http.request.method", "http.response.status_code", "http.route", "server.port",
        # LiveKit's own ids and states (speech and generation ids it generates, agent states, the
        # agent's class label): never user input; LiveKit marks what is with a `pii` segment.
        "lk.speech_id", "lk.generation_id", "lk.parent_generation_id", "lk.old_state", "lk.new_state",
        "lk.agent_label",
    }
)  # fmt: skip
PII_SEGMENT: Final = "pii"

# Attributes that must never become metric labels (unbounded). LiveKit's own job attribution
# (room/job ids) is listed too: livekit-agents stamps it on every measurement.
METRIC_FORBIDDEN_ATTRIBUTES: Final = frozenset(
    {SESSION_ID, CALL_ID, IDEMPOTENCY_KEY, "room_id", "job_id", "lk.room_id", "lk.job_id", "lk.room_name"}
)

# --- error.type values ----------------------------------------------------------------------------
# One code per kind of failure, the same on every span, span event, metric point and log line that
# carries error.type. ``agent.failures.classify`` picks it for any exception, by type; the project's
# own errors (agent/errors.py) carry theirs. An exception nothing recognises is reported by its class
# name (the semantic conventions' rule; bounded by the code base). Dashboards group by error.type;
# no alert rule depends on a value.
ERROR_CONNECT: Final = "connect_error"
ERROR_TIMEOUT: Final = "timeout"
ERROR_STREAM_DROPPED: Final = "stream_dropped"
ERROR_MALFORMED_RESPONSE: Final = "malformed_response"
ERROR_HTTP: Final = "http_{status}"  # ERROR_HTTP.format(status=503) -> "http_503"
ERROR_CIRCUIT_OPEN: Final = "circuit_open"
ERROR_COOLDOWN: Final = "cooldown"
ERROR_CANCELLED: Final = "cancelled"
ERROR_FIRST_TOKEN_TIMEOUT: Final = "first_token_timeout"
ERROR_EMPTY_RESPONSE: Final = "empty_response"
ERROR_ALL_PROVIDERS_FAILED: Final = "all_providers_failed"
ERROR_OUTBOX_STORAGE: Final = "outbox_storage_failed"
ERROR_FIRST_BYTE_TIMEOUT: Final = "first_byte_timeout"
ERROR_STREAM_TIMEOUT: Final = "stream_timeout"
ERROR_EMPTY_TRANSCRIPT: Final = "empty_transcript"

ERROR_TYPES: Final[Mapping[str, str]] = {
    # A dependency (CRM, calendar, LLM provider) failed; classify() decides these by exception type.
    ERROR_CONNECT: "no connection could be opened (refused, DNS, TLS)",
    ERROR_TIMEOUT: "the dependency did not answer in time (connect, read or pool timeout)",
    ERROR_STREAM_DROPPED: "the connection was cut before the response was complete",
    ERROR_MALFORMED_RESPONSE: "the response is not the protocol (not JSON, cannot be decoded)",
    ERROR_HTTP: "the dependency answered with this HTTP status: http_429, http_503, ...",
    ERROR_CIRCUIT_OPEN: "refused locally: the dependency's circuit breaker is open (no request sent)",
    ERROR_COOLDOWN: "refused locally: LiteLLM holds the provider in cooldown (no request sent)",
    ERROR_CANCELLED: "the caller cancelled the work (barge-in, session end)",
    # The LLM chain's own verdicts on one attempt or turn.
    ERROR_FIRST_TOKEN_TIMEOUT: "no token within the first-token deadline; the attempt was cut",
    ERROR_EMPTY_RESPONSE: "the stream ended with neither text nor tool calls",
    ERROR_ALL_PROVIDERS_FAILED: "every provider of the chain failed this turn (the fallback line was said)",
    ERROR_OUTBOX_STORAGE: "a CRM write neither the CRM nor the outbox's storage could take: NOT saved",
    # The speech chains' own verdicts (agent/speech/).
    ERROR_FIRST_BYTE_TIMEOUT: "no audio within the TTS first-byte deadline; the attempt was cut",
    ERROR_STREAM_TIMEOUT: "the TTS audio stopped mid-sentence for longer than the stream timeout",
    ERROR_EMPTY_TRANSCRIPT: "the STT answered without words for speech (the caller was asked again)",
    # Bad input (error.category validation): what was wrong.
    "invalid_arguments": "the LLM's tool arguments do not fit the tool's schema",
    "invalid_name": "the contact's name is empty or too long",
    "invalid_company": "the contact's company is not valid",
    "invalid_role": "the contact's role is not valid",
    "invalid_email": "the e-mail address is not valid",
    "invalid_phone": "the phone number is not valid",
    "invalid_contact": "the contact is not valid",
    "missing_contact_key": "neither an e-mail address nor a phone number to key the contact",
    "invalid_contact_key": "the contact key is neither an e-mail address nor a phone number",
    "no_contact": "a tool needs a contact and none was captured in the call yet",
    "malformed_tenant_id": "the tenant id does not have the tenant-id format",
    "unknown_tenant": "no such tenant in the tenants file",
    "missing_tenant": "a job carries no tenant and no default tenant is configured",
    # Refusals and configuration errors.
    "capacity": "a session was refused: the worker is at capacity",
    "tenant_capacity": "a session was refused: the tenant is at its share of the capacity",
    "no_usable_llm_provider": "no provider of the LLM chain has its API key",
    "no_usable_speech_provider": "no provider of the STT or TTS chain has its API key",
    "invalid_llm_config": "the LLM settings file (SALES_AGENT_LLM_CONFIG) is missing or invalid",
    "invalid_speech_config": "the STT or TTS settings file (SALES_AGENT_STT_CONFIG / _TTS_CONFIG) is invalid",
}

# --- Metrics ----------------------------------------------------------------------------------
# LLM (one attempt = one provider call; one completion = one turn across the fallback chain)
LLM_REQUESTS: Final = "sales_agent.llm.requests"  # counter; provider, model, outcome, error.type
LLM_ATTEMPT_DURATION: Final = "sales_agent.llm.attempt.duration"  # histogram s
LLM_TIME_TO_FIRST_TOKEN: Final = "sales_agent.llm.time_to_first_token"  # histogram s, per attempt
LLM_FALLBACKS: Final = "sales_agent.llm.fallbacks"  # counter; fallback.from/to/reason
LLM_TOKENS: Final = "sales_agent.llm.tokens"  # counter {token}; provider, model, token type, tenant
LLM_COST: Final = "sales_agent.llm.cost_usd"  # counter {USD}; provider, model, tenant
LLM_PROVIDER_AVAILABLE: Final = "sales_agent.llm.provider.available"  # gauge 1/0 (0 = cooling down)
LLM_COMPLETIONS: Final = "sales_agent.llm.completions"  # counter; outcome ok | failed, tenant
LLM_TOOL_CALLS_DROPPED: Final = "sales_agent.llm.tool_calls.dropped"  # counter; provider (stream broke)

# Speech chains (one attempt = one provider request; STT: one utterance, TTS: one sentence)
STT_REQUESTS: Final = "sales_agent.stt.requests"  # counter; provider, outcome ok | error, error.type
STT_ATTEMPT_DURATION: Final = "sales_agent.stt.attempt.duration"  # histogram s; provider, outcome
STT_FALLBACKS: Final = "sales_agent.stt.fallbacks"  # counter; fallback.from/to/reason
STT_PROVIDER_AVAILABLE: Final = "sales_agent.stt.provider.available"  # gauge 1/0 (0 = cooling down)
STT_RECOGNITIONS: Final = "sales_agent.stt.recognitions"  # counter; outcome ok | empty | failed, tenant
TTS_REQUESTS: Final = "sales_agent.tts.requests"  # counter; provider, outcome ok | error, error.type
TTS_TIME_TO_FIRST_BYTE: Final = "sales_agent.tts.time_to_first_byte"  # histogram s; provider
TTS_FALLBACKS: Final = "sales_agent.tts.fallbacks"  # counter; fallback.from/to/reason
TTS_PROVIDER_AVAILABLE: Final = "sales_agent.tts.provider.available"  # gauge 1/0 (0 = cooling down)
TTS_SYNTHESES: Final = "sales_agent.tts.syntheses"  # counter; outcome ok | failed, tenant

# Turns: recorded when each turn's reply starts (the caller's wait is over), in text and voice calls
TURN_RESPONSE_LATENCY: Final = "sales_agent.turn.response_latency"  # histogram s; the caller's wait
TURN_STAGE_DURATION: Final = "sales_agent.turn.stage.duration"  # histogram s; stage, mode, tenant
TURN_INTERRUPTIONS: Final = "sales_agent.turn.interruptions"  # counter; tenant (caller barged in)
TURN_SILENCE_GAP: Final = "sales_agent.turn.silence_gap"  # histogram s; tenant (reply audio ran dry)
TURN_UNANSWERED: Final = "sales_agent.turn.unanswered"  # counter; tenant, reason (caller got no reply)

# Dependencies (CRM, calendar) and resilience
DEPENDENCY_DURATION: Final = "sales_agent.dependency.duration"  # histogram s; dependency, operation, outcome
DEPENDENCY_RETRIES: Final = "sales_agent.dependency.retries"  # counter; dependency, operation, outcome
BREAKER_STATE_GAUGE: Final = "sales_agent.circuit_breaker.state"  # gauge 0 closed, 1 half-open, 2 open
BREAKER_TRANSITIONS: Final = "sales_agent.circuit_breaker.transitions"  # counter; from/to state
OUTBOX_DEPTH: Final = "sales_agent.outbox.depth"  # gauge {entry}; dependency
OUTBOX_OLDEST_AGE: Final = "sales_agent.outbox.oldest_age"  # gauge s; dependency
OUTBOX_ENQUEUED: Final = "sales_agent.outbox.enqueued"  # counter; dependency, operation
OUTBOX_DELIVERED: Final = "sales_agent.outbox.delivered"  # counter; dependency, operation
OUTBOX_FAILED: Final = "sales_agent.outbox.failed"  # counter; dependency, operation, error.type
OUTBOX_DEAD_LETTERS: Final = "sales_agent.outbox.dead_letters"  # gauge {entry}; dependency
OUTBOX_STORAGE_ERRORS: Final = "sales_agent.outbox.storage_errors"  # counter; outbox.step
OUTBOX_CLAIMS: Final = "sales_agent.outbox.claims"  # counter {claim}; dependency (live writes + drainers)
OUTBOX_LEASE_TAKEOVERS: Final = "sales_agent.outbox.lease_takeovers"  # counter; dependency, takeover reason
LLM_SHARED_COOLDOWNS_AVAILABLE: Final = "sales_agent.llm.shared_cooldowns.available"  # gauge 1/0 (Redis)
LLM_SHARED_COOLDOWNS_FALLBACKS: Final = "sales_agent.llm.shared_cooldowns.fallbacks"  # counter; step

# Tools and errors (the spec's withErrorHandling)
TOOL_CALLS: Final = "sales_agent.tool.calls"  # counter; operation, outcome, tenant
TOOL_DURATION: Final = "sales_agent.tool.duration"  # histogram s; operation, outcome
ERRORS: Final = "sales_agent.errors"  # counter; error.category, operation, tenant

# Sessions
SESSIONS_ACTIVE: Final = "sales_agent.sessions.active"  # up-down counter; tenant
SESSIONS_STARTED: Final = "sales_agent.sessions.started"  # counter; tenant
SESSIONS_ENDED: Final = "sales_agent.sessions.ended"  # counter; tenant, session.outcome
SESSIONS_REJECTED: Final = "sales_agent.sessions.rejected"  # counter; tenant, reason (capacity)
SESSION_DURATION: Final = "sales_agent.session.duration"  # histogram s; tenant, session.outcome

# Business
LEADS_CAPTURED: Final = "sales_agent.leads.captured"  # counter; tenant
LEADS_QUALIFIED: Final = "sales_agent.leads.qualified"  # counter; tenant, lead.band
MEETINGS_BOOKED: Final = "sales_agent.meetings.booked"  # counter; tenant
CALLS: Final = "sales_agent.calls"  # counter; tenant, call.outcome
CALL_DURATION: Final = "sales_agent.call.duration"  # histogram s; tenant, call.outcome

# Health
HEALTH_CHECK_STATUS: Final = "sales_agent.health.check.status"  # gauge 1 healthy / 0 unhealthy
HEALTH_CHECK_DURATION: Final = "sales_agent.health.check.duration"  # gauge s, last run

# Runtime (psutil covers process.* and system.*; this is what psutil cannot see)
EVENT_LOOP_LAG: Final = "sales_agent.event_loop.lag"  # gauge s
# CPython's garbage collector (semconv cpython.gc.*): a generation-2 collection stops the event loop.
CPYTHON_GC_COLLECTIONS: Final = "cpython.gc.collections"  # counter; cpython.gc.generation (0, 1, 2)
CPYTHON_GC_GENERATION: Final = "cpython.gc.generation"
TELEMETRY_EXPORT_FAILURES: Final = "sales_agent.telemetry.export.failures"  # counter; telemetry.signal

# --- Histogram boundaries (seconds) -----------------------------------------------------------
# Voice latency lives between 50 ms and a few seconds; 2 s is the response target, 5 s the alert.
LATENCY_BUCKETS_S: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip
# Calls and sessions last minutes.
DURATION_BUCKETS_S: Final = (5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
