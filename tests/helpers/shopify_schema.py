"""The Admin API as the fake shop knows it: every request is checked against a saved subset of
Shopify's schema (``shopify_admin_2026_10.graphql``), and every answer is cut to what the request
selected, so the fake passes nothing the real shop would refuse.

A refused request is answered as Shopify answers it: HTTP 200 and ``{"errors": [...]}`` without
``data``, each error with ``message``, ``locations`` and ``extensions.code``. The codes are those
of Shopify's GraphQL server (graphql-ruby): ``PARSE_ERROR``, ``undefinedField`` (with
``typeName`` and ``fieldName``), ``INVALID_VARIABLE`` (with ``problems``) and the others below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    get_operation_ast,
    parse,
    print_ast,
    specified_rules,
    validate,
)
from graphql.execution.values import get_variable_values

SCHEMA_PATH = Path(__file__).with_name("shopify_admin_2026_10.graphql")

# graphql-core rule → the code Shopify's server gives the same mistake.
_CODES = {
    "FieldsOnCorrectTypeRule": "undefinedField",
    "KnownArgumentNamesRule": "argumentNotAccepted",
    "ProvidedRequiredArgumentsRule": "missingRequiredArguments",
    "KnownTypeNamesRule": "undefinedType",
    "ScalarLeafsRule": "selectionMismatch",
    "VariablesInAllowedPositionRule": "variableMismatch",
    "NoUndefinedVariablesRule": "variableNotDefined",
    "NoUnusedVariablesRule": "variableNotUsed",
    "ValuesOfCorrectTypeRule": "argumentLiteralsIncompatible",
    "VariablesAreInputTypesRule": "variableRequiresValidType",
}
_UNDEFINED_FIELD = re.compile(r"Cannot query field '([^']+)' on type '([^']+)'")


class RefusedRequest(Exception):
    """The request is not valid for the schema; ``errors`` is Shopify's ``errors`` list."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e["message"]) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Request:
    """A valid request: its one operation, root fields and (raw, validated) variables."""

    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any]

    @property
    def is_mutation(self) -> bool:
        return self.operation.operation == OperationType.MUTATION

    @property
    def root_fields(self) -> list[str]:
        return [s.name.value for s in self.operation.selection_set.selections]  # type: ignore[attr-defined]


@cache
def admin_schema() -> GraphQLSchema:
    """The saved schema subset."""
    return build_schema(SCHEMA_PATH.read_text())


def check(query: str, variables: dict[str, Any] | None = None) -> Request:
    """Parse and validate ``query`` and its ``variables`` as Shopify would.

    Raises:
        RefusedRequest: a syntax error, a document the schema does not allow, or variables
            that do not fit the operation's declared types.
    """
    document = _valid_document(query)
    operation = get_operation_ast(document)
    if operation is None:
        raise RefusedRequest([{"message": "An operation name is required", "locations": []}])
    definitions = operation.variable_definitions or ()
    coerced = get_variable_values(
        admin_schema(), definitions, variables or {}, hide_suggestions=True
    )
    if isinstance(coerced, list):
        raise RefusedRequest([_variable_error(error) for error in coerced])
    return Request(document, operation, dict(variables or {}))


def shape(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the request selected it (aliases, fragments); fails if the fake's answer does
    not fit the schema (a missing non-null field, a wrong enum value)."""
    result = execute_sync(
        admin_schema(), request.document, root_value=data, variable_values=request.variables
    )
    if result.errors:
        raise AssertionError(f"the fake shop answered outside the schema: {result.errors}")
    assert result.data is not None
    return result.data


@cache
def _valid_document(query: str) -> DocumentNode:
    try:
        document = parse(query)
    except GraphQLError as error:
        raise RefusedRequest([_error(error, "PARSE_ERROR")]) from None
    refusals = []
    for rule in specified_rules:  # one rule at a time, to give each error its own code
        for error in validate(admin_schema(), document, [rule]):
            refusals.append(_validation_error(error, _CODES.get(rule.__name__, "validationError")))
    if refusals:
        raise RefusedRequest(refusals)
    return document


def _validation_error(error: GraphQLError, code: str) -> dict[str, Any]:
    found = _UNDEFINED_FIELD.match(error.message) if code == "undefinedField" else None
    if found is None:
        return _error(error, code)
    field, type_name = found.groups()
    shaped = _error(error, code, typeName=type_name, fieldName=field)
    shaped["message"] = f"Field '{field}' doesn't exist on type '{type_name}'"
    return shaped


def _variable_error(error: GraphQLError) -> dict[str, Any]:
    definition = (error.nodes or [None])[0]
    name = getattr(getattr(definition, "variable", None), "name", None)
    declared = getattr(definition, "type", None)
    if name is None or declared is None:
        return _error(error, "INVALID_VARIABLE")
    shaped = _error(error, "INVALID_VARIABLE", problems=[{"explanation": error.message}])
    shaped["message"] = (
        f"Variable ${name.value} of type {print_ast(declared)} was provided invalid value"
    )
    return shaped


def _error(error: GraphQLError, code: str, **extensions: Any) -> dict[str, Any]:
    locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or []]
    return {
        "message": error.message,
        "locations": locations,
        "extensions": {"code": code, **extensions},
    }
