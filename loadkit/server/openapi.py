"""Internal: ``GET /openapi.json``: the published phase-2 operation plus create and retrieve.

The stream operation and its schemas follow Trigger.dev's published OpenAPI for it
(``docs/batch-api.md``, section 5)
with the answers this server really gives added (408, 500 with ``x-should-retry``, the
``runCount`` of a sealed answer, ``error`` next to ``message``). Limits come from the config.
"""

from __future__ import annotations

from typing import Any

from loadkit import wire
from loadkit.server.config import ServerConfig

__all__ = ["openapi_document"]

_JSON = wire.JSON_CONTENT_TYPE


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_INT = {"type": "integer"}
_STR = {"type": "string"}
_RATE_HEADERS = {
    name: {"schema": _INT, "description": text}
    for name, text in (
        (wire.Header.RATELIMIT_LIMIT, "Bucket size."),
        (wire.Header.RATELIMIT_REMAINING, "Tokens left (≥ 0)."),
        (
            wire.Header.RATELIMIT_RESET,
            "When enough tokens are back: epoch seconds (or milliseconds when so configured).",
        ),
        (wire.Header.RETRY_AFTER, "Seconds to wait (≥ 1)."),
    )
}


def openapi_document(config: ServerConfig | None = None) -> dict[str, Any]:
    cfg = config or ServerConfig()
    ndjson_schema = {
        "type": "string",
        "description": "NDJSON stream where each line is a BatchItemNDJSON object.",
    }
    batch_id = {
        "name": "batchId",
        "in": "path",
        "required": True,
        "description": "The batch ID returned from POST /api/v3/batches",
        "schema": _STR,
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Trigger.dev batch API (loadkit reference server)",
            "description": "Create, stream and retrieve batches, as the loadkit reference "
            "server serves them.",
            "version": "1.0.0",
        },
        "servers": [{"url": "/"}],
        "security": [{"BearerAuth": []}],
        "paths": {
            wire.CREATE_PATH: {
                "post": {
                    "tags": ["Batches"],
                    "summary": "Create a batch (Phase 1)",
                    "operationId": "createBatch",
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
                                "schema": {"$ref": "#/components/schemas/CreateBatchRequestBody"}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Batch created",
                            "content": {
                                _JSON: {
                                    "schema": {"$ref": "#/components/schemas/CreateBatchResponse"}
                                }
                            },
                        },
                        "200": {
                            "description": "Idempotent replay of an earlier create",
                            "content": {
                                _JSON: {
                                    "schema": {"$ref": "#/components/schemas/CreateBatchResponse"}
                                }
                            },
                        },
                        "400": _error(
                            "Empty body, invalid JSON, schema failure or runCount over the maximum"
                        ),
                        "401": _error("API key missing or invalid"),
                        "408": _error("Request timed out"),
                        "413": _error(f"Body over {wire.CREATE_BODY_MAX_BYTES} bytes"),
                        "422": _error("Other validation errors"),
                        "429": _error("Batch rate limit exceeded", _RATE_HEADERS),
                        "500": _error("Internal server error"),
                    },
                }
            },
            wire.STREAM_PATH.replace("{batch_id}", "{batchId}"): {
                "post": {
                    "tags": ["Batches"],
                    "summary": "Stream batch items (Phase 2)",
                    "description": (
                        "Phase 2 of 2-phase batch API. Accepts an NDJSON stream of batch items and "
                        "enqueues them. The stream is processed with backpressure - items are "
                        "enqueued as they arrive. The batch is sealed when the stream completes "
                        "successfully."
                    ),
                    "operationId": "streamBatchItems",
                    "parameters": [batch_id],
                    "requestBody": {
                        "required": True,
                        "content": {
                            media: {"schema": ndjson_schema} for media in wire.NDJSON_CONTENT_TYPES
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Items successfully processed",
                            "content": {
                                _JSON: {
                                    "schema": {
                                        "$ref": "#/components/schemas/StreamBatchItemsResponse"
                                    }
                                }
                            },
                        },
                        "400": _error(
                            "Invalid request (e.g., no body, invalid JSON or UTF-8 on a line)"
                        ),
                        "401": _error("Unauthorized - API key is missing or invalid"),
                        "408": _error("Request timed out"),
                        "415": _error(wire.msg.unsupported_media_type()),
                        "422": _error(
                            "Validation error (unknown batch, invalid item, index ≥ runCount, "
                            "aborted batch)"
                        ),
                        **{
                            str(status): _error(
                                "Internal server error" if status == 500
                                else "Injected error (error_status)",
                                {
                                    wire.Header.SHOULD_RETRY: {
                                        "schema": {"type": "string", "enum": ["true", "false"]}
                                    }
                                },
                            )
                            for status in sorted({500, cfg.error_status})
                        },
                    },
                }
            },
            wire.RETRIEVE_PATH.replace("{batch_id}", "{batchId}"): {
                "get": {
                    "tags": ["Batches"],
                    "summary": "Retrieve a batch",
                    "operationId": "retrieveBatch",
                    "parameters": [batch_id],
                    "responses": {
                        "200": {
                            "description": "The batch",
                            "content": {
                                _JSON: {
                                    "schema": {"$ref": "#/components/schemas/Batch"}
                                }
                            },
                        },
                        "401": _error("API key missing or invalid"),
                        "404": _error("No such batch in this environment"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "CreateBatchRequestBody": {
                    "type": "object",
                    "required": ["runCount"],
                    "properties": {
                        "runCount": {"type": "integer", "minimum": 1, "maximum": cfg.max_items},
                        "taskIdentifiers": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "minLength": 1},
                        },
                        "parentRunId": _STR,
                        "resumeParentOnCompletion": {"type": "boolean"},
                        "idempotencyKey": {
                            "type": "string",
                            "maxLength": wire.IDEMPOTENCY_KEY_MAX_CHARS,
                        },
                        "idempotencyKeyOptions": {"type": "object"},
                    },
                },
                "CreateBatchResponse": {
                    "type": "object",
                    "required": ["id", "runCount", "isCached"],
                    "properties": {
                        "id": _STR,
                        "runCount": _INT,
                        "isCached": {"type": "boolean"},
                        "idempotencyKey": _STR,
                    },
                },
                "StreamBatchItemsResponse": {
                    "type": "object",
                    "required": ["id", "itemsAccepted", "itemsDeduplicated", "sealed"],
                    "properties": {
                        "id": {"type": "string", "description": "The batch ID."},
                        "itemsAccepted": {
                            "type": "integer",
                            "description": "Number of items successfully accepted.",
                        },
                        "itemsDeduplicated": {
                            "type": "integer",
                            "description": "Number of items that were deduplicated.",
                        },
                        "sealed": {
                            "type": "boolean",
                            "description": "Whether the batch was sealed.",
                        },
                        "runCount": {"type": "integer", "description": "Sent when sealed."},
                        "enqueuedCount": {
                            "type": "integer",
                            "description": "Only present when sealed=false.",
                        },
                        "expectedCount": {
                            "type": "integer",
                            "description": "Only present when sealed=false.",
                        },
                    },
                },
                "Batch": {
                    "type": "object",
                    "required": [
                        "id",
                        "status",
                        "createdAt",
                        "updatedAt",
                        "runCount",
                        "runs",
                        "processing",
                    ],
                    "properties": {
                        "id": _STR,
                        "status": {"type": "string", "enum": [s.value for s in wire.BatchStatus]},
                        "idempotencyKey": _STR,
                        "createdAt": {"type": "string", "format": "date-time"},
                        "updatedAt": {"type": "string", "format": "date-time"},
                        "runCount": _INT,
                        "runs": {"type": "array", "items": _STR},
                        "processing": {
                            "type": "object",
                            "required": ["errors"],
                            "properties": {
                                "completedAt": {"type": "string", "format": "date-time"},
                                "errors": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["index", "taskIdentifier", "error"],
                                        "properties": {
                                            "index": _INT,
                                            "taskIdentifier": _STR,
                                            "error": _STR,
                                            "errorCode": _STR,
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {"message": _STR, "error": _STR},
                },
            },
            "securitySchemes": {
                "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
