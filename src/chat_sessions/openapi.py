"""The OpenAPI document's request shapes say what the server refuses.

A body struct declared `forbid_unknown_fields=True` answers 400 to a field it does not know;
Litestar 2 documents every struct as open (`additionalProperties` unset, so true), and a
client generated from the document, or schemathesis, sends extra fields the server refuses.
This plugin documents such a struct as closed. It extends Litestar's own struct plugin, a
private class (tests/test_reliability_openapi.py fails loudly if it changes; Litestar is
pinned below 3).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import Schema
from litestar.typing import FieldDefinition


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        config = msgspec.inspect.type_info(field_definition.type_)
        if getattr(config, "forbid_unknown_fields", False):
            schema.additional_properties = False
        return schema
