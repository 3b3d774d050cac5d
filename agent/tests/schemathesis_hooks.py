"""Schemathesis hooks for fuzzing the DataScale API: how to send the
NDJSON bodies of event ingest (the document describes them as the array of
their lines), the raw bytes of collector packages, and the one thing about
JSON numbers that no JSON Schema keyword can say."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """An array is sent as its items, one JSON document a line. Anything
    else is not an array of lines and has no NDJSON form: it is sent as one
    line holding it in an array, which is not an event, so that it stays
    what it is, a body the document does not allow."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        return "".join(json.dumps(item) + "\n" for item in value).encode()
    return (json.dumps([value]) + "\n").encode()


@schemathesis.serializer("application/gzip")
def package(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


def integers_as_integers(value):
    """`value` with every float that is a whole number written as an int,
    up to 2**53, beyond which schemathesis sends integers as they are."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, list):
        return [integers_as_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: integers_as_integers(item) for key, item in value.items()}
    return value


@schemathesis.hook
def map_body(ctx, body):
    """JSON Schema counts `242.0` as an integer, so schemathesis sends it
    for `type: integer`; DataScale's integer fields take integers written
    as integers and refuse `242.0` as they refuse `242.5`, and no keyword
    of the document can say so. Whole numbers are therefore written as
    integers; a real fraction (`242.5`) is still sent, and refused."""
    return integers_as_integers(body)
