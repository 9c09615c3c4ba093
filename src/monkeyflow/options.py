"""Options that plugins (verifiers, sampling backends) declare, and how config values reach them.

A plugin declares `options_schema`: option name -> JSON schema of its value, with `default` and
`description`. Two extension keywords say what an option is for:
- `x-runtime: true` — it changes how or where the work runs (workers, a server's URL), never its
  result: kept out of the verdict cache key, a shard's params and the run key.
- `x-required: true` — the option has no default and must be given.
- `x-run-key: false` — a sampling backend option that is not part of the run key (same meaning
  as `x-runtime` for backends; the name says what it is kept out of).

`resolve_options` validates given values against the schema (errors name the key path, like
every config error) and fills in the defaults: the plugin's schema is the one source of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema


class ConfigError(ValueError):
    """A config that cannot run; the message names the key."""


def object_schema(options_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of a mapping of these options (unknown keys rejected)."""
    properties = {
        k: {kk: vv for kk, vv in v.items() if kk != "x-required"} for k, v in options_schema.items()
    }
    required = [k for k, v in options_schema.items() if v.get("x-required")]
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": required,
    }


def format_error(err: jsonschema.ValidationError, prefix: str = "") -> str:
    """`config error at <key path>: <what is wrong>` for a jsonschema error."""
    parts = [p for p in prefix.split(".") if p] + [str(p) for p in err.absolute_path]
    message = err.message
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        if extra:
            parts.append(extra[0])
            message = f"unknown key {extra[0]!r}"
            known = sorted(err.schema.get("properties", {}))
            message += (
                f" (known keys here: {', '.join(known)})"
                if known
                else " (this section takes no keys)"
            )
    where = ".".join(parts) if parts else "(top level)"
    return f"config error at {where}: {message}"


def first_error(schema: Mapping[str, Any], value: Any, prefix: str = "") -> str | None:
    """The message of the shallowest validation error, or None if `value` is valid."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(value),
        key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)),
    )
    return format_error(errors[0], prefix) if errors else None


def resolve_options(
    options_schema: Mapping[str, Any], *layers: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """Defaults from the schema, overridden by each layer in turn; every layer validated.

    `where` is the config path of the section (for messages), e.g. `verify.lean`.
    """
    schema = object_schema(options_schema)
    out = {name: sub["default"] for name, sub in options_schema.items() if "default" in sub}
    for layer in layers:
        if not layer:
            continue
        message = first_error(schema, dict(layer), where)
        if message:
            raise ConfigError(message)
        out.update(layer)
    message = first_error(schema, out, where)
    if message:
        raise ConfigError(message)
    return out


def result_options(options_schema: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that change results (every option not marked `x-runtime` or `x-run-key: false`)."""
    return {
        k: v
        for k, v in options.items()
        if not options_schema.get(k, {}).get("x-runtime")
        and options_schema.get(k, {}).get("x-run-key", True)
    }
