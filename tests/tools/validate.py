#!/usr/bin/env python3
"""Validates JSON bodies for the end-to-end tests.

Reads one JSON object per line on stdin:
  {"kind": "openapi", "path": "/v2/droplets", "method": "get", "status": "200", "body": {...}}
  {"kind": "openapi", "path": "/v2/firewalls", "method": "post", "status": "request", "body": {...}}
  {"kind": "sarif", "body": {...}}
  {"kind": "emf", "body": {...}}
and checks each against DigitalOcean's OpenAPI subset (openapi-schema-validator, OAS 3.0
semantics) or the SARIF 2.1.0 schema (jsonschema, the schema's own draft), or CloudWatch's Embedded Metric Format (tests/tools/emf.schema.json,
written from the EMF specification). Prints one line per failure and
exits 1 if any failed, 0 if all passed.

Environment: DO_OPENAPI (path of openapi-subset.json), SARIF_SCHEMA (path of the SARIF schema).
"""
import json
import os
import sys

try:
    import jsonschema
    from openapi_schema_validator import OAS30Validator, validate as oas_validate
except ImportError as e:  # a clear message, never a silent pass
    print(f"validate.py: missing Python package ({e}); run `make setup`", file=sys.stderr)
    sys.exit(3)


def main():
    spec = None
    sarif = None
    failures = 0
    checked = 0
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        item = json.loads(line)
        label = f"#{n} {item.get('kind')} {item.get('method', '')} {item.get('path', '')} {item.get('status', '')}".strip()
        try:
            if item["kind"] == "openapi":
                if spec is None:
                    with open(os.environ["DO_OPENAPI"]) as f:
                        spec = json.load(f)
                op = spec["paths"][item["path"]][item["method"]]
                status = item["status"]
                if status == "request":
                    schema = op["requestBody"]["content"]["application/json"]["schema"]
                else:
                    resp = op["responses"].get(status) or op["responses"]["default"]
                    schema = resp["content"]["application/json"]["schema"]
                oas_validate(item["body"], schema, cls=OAS30Validator)
                key = item.get("key")
                if key is not None and key not in item["body"]:
                    raise ValueError(f"top-level key {key!r} missing")
            elif item["kind"] == "sarif":
                if sarif is None:
                    with open(os.environ["SARIF_SCHEMA"]) as f:
                        sarif = json.load(f)
                cls = jsonschema.validators.validator_for(sarif)
                cls(sarif).validate(item["body"])
            elif item["kind"] == "emf":
                with open(os.path.join(os.path.dirname(__file__), "emf.schema.json")) as f:
                    emf = json.load(f)
                jsonschema.Draft7Validator(emf).validate(item["body"])
            else:
                raise ValueError(f"unknown kind {item['kind']!r}")
            checked += 1
        except Exception as e:  # report every failure, keep going
            failures += 1
            msg = str(e).splitlines()[0] if str(e) else repr(e)
            print(f"FAIL {label}: {type(e).__name__}: {msg[:500]}")
    print(f"{checked} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
