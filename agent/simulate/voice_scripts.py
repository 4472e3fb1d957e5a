"""Scripted callers for ``simulate --mode voice``: what each caller says, and what the STT hears.

A voice line is spoken aloud (``espeak-ng``, so the real VAD segments it) and published to the
local STT stand-ins as the line's transcript. The transcript may carry the same ``/tool NAME {json}``
lines as the text scripts, which the local LLM turns into exactly those tool calls, so a voice call
is as deterministic as a text one while every second of it is real audio at real-time pace.

Calls are short (1-3 caller lines, about two seconds each) so a voice run stays quick. The rotation
covers a sale, a caller who talks over the agent's greeting (barge-in) and a caller who goes silent
for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.simulate.scripts import Prospect, prospect_for, tool
from agent.vocabulary.call_outcome import EndCallChoice


@dataclass(frozen=True)
class VoiceLine:
    spoken: str
    transcript_tools: tuple[str, ...] = ()  # /tool lines appended to the transcript
    barge_in_after_s: float | None = None  # speak this long after the agent's reply starts (over it)
    pause_before_s: float = 0.3  # silence after the agent's reply, before speaking

    def transcript(self) -> str:
        return "\n".join((self.spoken, *self.transcript_tools))


@dataclass(frozen=True)
class VoiceScript:
    name: str
    lines: tuple[VoiceLine, ...]
    expected_outcome: EndCallChoice | None


def _first(p: Prospect) -> str:
    return p.name.split()[0]


def voice_converted(p: Prospect) -> VoiceScript:
    return VoiceScript(
        "voice_converted",
        (
            VoiceLine(
                f"Hi, I'm {_first(p)} from {p.company.split()[0]}.",
                (tool("capture_basic_info", name=p.name, company=p.company, role=p.role, email=p.email),),
            ),
            VoiceLine(
                "We have budget, and I decide.",
                (
                    tool(
                        "qualify_lead",
                        budget=60000,
                        authority="decision_maker",
                        need="high",
                        timeline="this_quarter",
                    ),
                    tool("check_availability", days_ahead=7),
                ),
            ),
            VoiceLine(
                "The first slot works, thanks.",
                (tool("book_meeting", slot_start="{slot}"), tool("end_call", outcome="converted")),
            ),
        ),
        "converted",
    )


def voice_barge_in(p: Prospect) -> VoiceScript:
    """The caller talks over the agent's greeting, 0.8 s into it (the first seconds of a session are
    when livekit's echo-cancellation warm-up would ignore them)."""
    return VoiceScript(
        "voice_barge_in",
        (
            VoiceLine(
                f"Sorry, I'm {_first(p)}, call me later.",
                (
                    tool("capture_basic_info", name=p.name, company=p.company, phone=p.phone),
                    tool("end_call", outcome="callback"),
                ),
                barge_in_after_s=0.8,
            ),
        ),
        "callback",
    )


def voice_silence(p: Prospect) -> VoiceScript:
    """The caller says nothing for four seconds before answering."""
    return VoiceScript(
        "voice_silence",
        (
            VoiceLine(
                f"Hi, it's {_first(p)}.",
                (tool("capture_basic_info", name=p.name, company=p.company, email=p.email),),
            ),
            VoiceLine(
                "No thanks, not this year.",
                (
                    tool("qualify_lead", budget=0, authority="influencer", need="low", timeline="none"),
                    tool("end_call", outcome="not_interested"),
                ),
                pause_before_s=4.0,
            ),
        ),
        "not_interested",
    )


VOICE_ROTATION = (voice_converted, voice_barge_in, voice_silence)


def voice_script_for(index: int, run_id: str) -> VoiceScript:
    return VOICE_ROTATION[index % len(VOICE_ROTATION)](prospect_for(index, run_id))
