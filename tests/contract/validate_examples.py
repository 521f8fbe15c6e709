#!/usr/bin/env python3
"""Validate every `example` in an OpenAPI 3.0 document against the schema it belongs to.

    venv/bin/python validate_examples.py openapi.json        # exit 1 on any invalid example

Covers schema-level examples (components/schemas/*/example and nested ones), parameter
examples, and media-type example/examples. OpenAPI 3.0's `nullable` is translated to a JSON
Schema type union; `format` is not asserted (as in OpenAPI). Uses jsonschema_rs, which
Schemathesis already pulls in (no extra install).
"""
import copy
import json
import sys

import jsonschema_rs


def to_json_schema(node):
    """OpenAPI 3.0 schema object -> Draft 4 JSON Schema (nullable, example keys)."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("example", "nullable", "discriminator", "xml", "externalDocs", "deprecated", "readOnly", "writeOnly")}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:  # $ref / allOf / oneOf: allow null beside it
            inner = {k: v for k, v in out.items() if k not in ("description", "title", "default")}
            out = {"anyOf": [inner, {"type": "null"}]}
    return out


def main(path):
    doc = json.load(open(path))
    components = to_json_schema(doc.get("components", {}).get("schemas", {}))
    failures, checked = [], 0

    def validate(where, schema, value):
        nonlocal checked
        checked += 1
        root = {"definitions": components, **to_json_schema(schema)}
        text = json.dumps(root).replace("#/components/schemas/", "#/definitions/")
        v = jsonschema_rs.Draft4Validator(json.loads(text), validate_formats=False)
        errs = [f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}" for e in v.iter_errors(value)]
        if errs:
            failures.append((where, errs))

    def walk_schema(where, schema):
        if isinstance(schema, dict):
            if "example" in schema:
                validate(where, schema, schema["example"])
            for k, v in schema.items():
                if k in ("properties",) and isinstance(v, dict):
                    for pk, pv in v.items():
                        walk_schema(f"{where}.{pk}", pv)
                elif k in ("items", "additionalProperties"):
                    walk_schema(f"{where}[]", v)
                elif k in ("allOf", "oneOf", "anyOf") and isinstance(v, list):
                    for i, x in enumerate(v):
                        walk_schema(f"{where}.{k}[{i}]", x)

    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        walk_schema(f"#/components/schemas/{name}", schema)
    for p, item in doc.get("paths", {}).items():
        for m, op in item.items():
            if not isinstance(op, dict):
                continue
            opid = op.get("operationId", f"{m} {p}")
            for prm in op.get("parameters", []):
                if "example" in prm:
                    validate(f"{opid} param {prm['name']}", prm["schema"], prm["example"])
            media = []
            for mt, c in op.get("requestBody", {}).get("content", {}).items():
                media.append((f"{opid} requestBody {mt}", c))
            for st, r in op.get("responses", {}).items():
                for mt, c in r.get("content", {}).items():
                    media.append((f"{opid} {st} {mt}", c))
            for where, c in media:
                if "example" in c:
                    validate(where, c["schema"], c["example"])
                for ex_name, ex in c.get("examples", {}).items():
                    if "value" in ex:
                        validate(f"{where} examples.{ex_name}", c["schema"], ex["value"])

    for where, errs in failures:
        print(f"INVALID {where}")
        for e in errs:
            print(f"    {e}")
    print(f"{checked - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "openapi.json"))
