"""The project's closed vocabularies, one module each, imported wherever the values are used.

A value set that more than one module checks, emits or parses (tenant ids, call outcomes, lead
bands, the local stand-ins' fault modes, local provider names) is defined once here; the
``error.type`` codes live beside ``ERROR_TYPE`` in ``telemetry/names.py`` and ``agent/failures.py``
decides which one a failure gets. These modules import only the standard library, so
``local_services/`` and ``bench/`` can use them without loading LiveKit or LiteLLM.
``tests/test_vocabularies.py`` pins each one as the single definition.
"""
