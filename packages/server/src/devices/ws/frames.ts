/** Validation of WebSocket frames against the protocol's schemas (bodies are never coerced). */
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import {
  FlotillaError,
  HelloData,
  InventoryData,
  LogsResultData,
  MAX_JSON_DEPTH,
  WS_MAX_FRAME_BYTES,
  WsMessage,
  jsonDepthExceeds,
} from '@flotilla/protocol';
import type { TSchema } from '@flotilla/protocol';

const ajv = new Ajv({ allErrors: false, strict: false, coerceTypes: false, useDefaults: false });
addFormats.default(ajv);

function compile<T>(schema: TSchema): ValidateFunction<T> {
  return ajv.compile<T>(schema as object);
}

const validators = {
  message: compile<WsMessage>(WsMessage),
  hello: compile<HelloData>(HelloData),
  inventory: compile<InventoryData>(InventoryData),
  logsResult: compile<LogsResultData>(LogsResultData),
};

function problem(validate: ValidateFunction): string {
  const e = validate.errors?.[0];
  return e ? `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}` : 'is invalid';
}

/** Parses one text frame; throws FLT_BAD_JSON / FLT_JSON_TOO_DEEP / FLT_VALIDATION / FLT_BODY_TOO_LARGE. */
export function parseFrame(raw: Buffer, isBinary: boolean): WsMessage {
  if (raw.length > WS_MAX_FRAME_BYTES) {
    throw new FlotillaError('FLT_BODY_TOO_LARGE', `frames are limited to ${WS_MAX_FRAME_BYTES} bytes`);
  }
  if (isBinary) throw new FlotillaError('FLT_BAD_REQUEST', 'frames must be JSON text, not binary');
  const text = raw.toString('utf8');
  if (jsonDepthExceeds(text)) {
    throw new FlotillaError('FLT_JSON_TOO_DEEP', `frames may nest at most ${MAX_JSON_DEPTH} deep`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FlotillaError('FLT_BAD_JSON', 'the frame is not valid JSON');
  }
  if (!validators.message(value)) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `not a message {id, command, data}: ${problem(validators.message)}`,
    );
  }
  return value;
}

export function helloData(data: unknown): HelloData {
  if (!validators.hello(data))
    throw new FlotillaError('FLT_VALIDATION', `invalid hello: ${problem(validators.hello)}`);
  return data;
}

export function inventoryData(data: unknown): InventoryData {
  if (!validators.inventory(data)) {
    throw new FlotillaError('FLT_VALIDATION', `invalid inventory: ${problem(validators.inventory)}`);
  }
  return data;
}

/** A device's `logs-result` data; FLT_VALIDATION names what is wrong. */
export function logsResultData(data: unknown): LogsResultData {
  if (!validators.logsResult(data))
    throw new FlotillaError('FLT_VALIDATION', `invalid logs-result: ${problem(validators.logsResult)}`);
  return data;
}

/** The id of a frame that failed validation, if it had a usable one (to address the error reply). */
export function idOfInvalidFrame(raw: Buffer): string | undefined {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    if (value !== null && typeof value === 'object' && 'id' in value) {
      const id = value.id;
      if (typeof id === 'string' && id.length >= 1 && id.length <= 64) return id;
    }
  } catch {
    // not JSON: no id to answer
  }
  return undefined;
}
