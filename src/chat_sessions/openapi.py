"""The OpenAPI document's request shapes say what the server refuses.

Litestar 2 documents a msgspec struct less strictly than msgspec decodes it, so clients
generated from the document, and schemathesis, send what the server refuses:

- a struct declared `forbid_unknown_fields=True` answers 400 to a field it does not know, but
  is documented as open (`additionalProperties` unset): here it is closed;
- a bound of 0 (`Meta(ge=0)`) is dropped, 0 being falsy where Litestar asks whether a field
  is constrained: here every bound msgspec checks is written on the property;
- an object's bounds are dropped (how many keys, how long a key, how long a string value, as
  the Conversations API's `metadata` has them): here they are written too;
- a message's content parts are plain objects to msgspec (messages/parts.py checks them):
  here a part is documented as an object with a string `type`, and what each known type needs.

This extends Litestar's own struct plugin, a private class (tests/http/test_openapi.py
fails loudly if it changes; pyproject.toml bounds Litestar to the tested minor, 2.25).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.typing import FieldDefinition

# msgspec's constraint -> the JSON Schema keyword (Litestar's Schema attribute) stating it.
_BOUNDS = {
    msgspec.inspect.IntType: {"ge": "minimum", "le": "maximum"},
    msgspec.inspect.StrType: {"min_length": "min_length", "max_length": "max_length"},
    msgspec.inspect.ListType: {"min_length": "min_items", "max_length": "max_items"},
    msgspec.inspect.DictType: {"min_length": "min_properties", "max_length": "max_properties"},
}


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        assert isinstance(info, msgspec.inspect.StructType)
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _write_bounds(prop, field.type)
                if field.encode_name == "content":
                    _describe_parts(prop)
        return schema


CONTENT_PART = Schema(
    type=OpenAPIType.OBJECT,
    required=["type"],
    properties={"type": Schema(type=OpenAPIType.STRING)},
    description=(
        "A content part, kept as sent. Known types need: text, input_text, output_text a "
        "string `text`; refusal a string `refusal`; image_url an object `image_url` with a "
        "string `url`; input_image a string `image_url` or `file_id`; input_audio an object "
        "`input_audio` with `data` and `format`; file, input_file an object `file` or a string "
        "`file_id` (`file_data`, `file_url`). Other types are stored as they are."
    ),
)


def _describe_parts(prop: Schema) -> None:
    """`content`: a string, or an array of CONTENT_PARTs."""
    for option in prop.one_of or ():
        if isinstance(option, Schema) and option.type == OpenAPIType.ARRAY:
            option.items = CONTENT_PART


def _write_bounds(prop: Schema, shape: msgspec.inspect.Type) -> None:
    options = shape.types if isinstance(shape, msgspec.inspect.UnionType) else (shape,)
    for option in options:
        if isinstance(option, msgspec.inspect.Metadata):  # a Meta with a description
            option = option.type
        for constraint, keyword in _BOUNDS.get(type(option), {}).items():
            value = getattr(option, constraint)
            if value is not None and getattr(prop, keyword) is None:
                setattr(prop, keyword, value)
        if isinstance(option, msgspec.inspect.DictType):
            _write_dict_bounds(_object_schema(prop), option)


def _object_schema(prop: Schema) -> Schema:
    """The object's own schema: `prop`, or its object option when it may also be null."""
    for option in prop.one_of or ():
        if isinstance(option, Schema) and option.type == OpenAPIType.OBJECT:
            return option
    return prop


def _write_dict_bounds(schema: Schema, shape: msgspec.inspect.DictType) -> None:
    """The bounds of an object's string keys and string values."""
    if isinstance(shape.key_type, msgspec.inspect.StrType) and schema.property_names is None:
        names = Schema(type=OpenAPIType.STRING)
        _write_bounds(names, shape.key_type)
        if names.max_length is not None or names.min_length is not None:
            schema.property_names = names
    values = schema.additional_properties
    if isinstance(shape.value_type, msgspec.inspect.StrType) and isinstance(values, Schema):
        _write_bounds(values, shape.value_type)
