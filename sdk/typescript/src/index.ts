/**
 * `@trellis/sdk`: a typed client for the Trellis REST API (`/v1`).
 *
 * One class, {@link TrellisClient}, with one method per operation, and one error
 * type, {@link TrellisError}. The request and response types are generated from the
 * server's OpenAPI document (`src/generated/api.ts`, `npm run generate`); this file
 * only names them. No runtime dependencies: it uses the platform `fetch` (Node 18+,
 * browsers, Deno, Bun).
 *
 * @packageDocumentation
 */

import type { components, paths } from "./generated/api.js";

export type { components, paths };

type Schemas = components["schemas"];

/** The body of create and update: `{ name, description?, steps }`. */
export type Definition = Schemas["Definition"];
/** One step of a definition; `type` selects the variant. */
export type Step = Schemas["Step"];
// The variants are taken from `Step` by their `type` rather than by schema name, so
// each includes its `type` literal however the document spells the tag (inside each
// variant's schema, or beside a `$ref` in an `allOf`).
/** Runs a function (`ComputeStep`); the only step that may carry `encryptedParams`. */
export type ComputeStep = Extract<Step, { type: "compute" }>;
/** Waits for a person to approve or reject (`ApprovalStep`; see {@link TrellisClient.approveStep}). */
export type ApprovalStep = Extract<Step, { type: "approval" }>;
/** Routes on the run context (`DecisionStep`): the first matching case wins. */
export type DecisionStep = Extract<Step, { type: "decision" }>;
/** Pauses the run for `delayMs` (`DelayStep`). */
export type DelayStep = Extract<Step, { type: "delay" }>;
/**
 * One `encryptedParams` entry: `{ value, encrypt: true }` when sent as a new secret,
 * `{ value: "********", encrypted: true }` when read back.
 */
export type ParamEntry = Schemas["ParamEntry"];
/** A stored definition as read back, with `id`, `version` and every secret masked. */
export type Orchestration = Schemas["Orchestration"];
/** An uploaded Wasm component: `{ id, version, sha256, sizeBytes, settings, … }`. */
export type TrellisFunction = Schemas["Function"];
// Also under the schema's own name, for `import type { Function as … }`; inside this
// file it would shadow the global `Function`, hence the primary name above.
export type { TrellisFunction as Function };
/** A function's limits and capabilities. */
export type FunctionSettings = Schemas["FunctionSettings"];
/** What a direct invocation returns: `{ output, logs, durationMs }`. */
export type InvokeResult = Schemas["InvokeResult"];
/** One log line of a function. */
export type LogEntry = Schemas["LogEntry"];
/** The body of {@link TrellisClient.startRun}: `{ input? }`. */
export type StartRun = Schemas["StartRun"];
/** What starting a run returns: `{ id, status }`. */
export type StartedRun = Schemas["StartedRun"];
/** One execution of an orchestration version, with its per-step records. */
export type Run = Schemas["Run"];
/** One step's record within a {@link Run}. */
export type RunStep = Schemas["RunStep"];
/** `pending | running | waiting | completed | failed | cancelled`. */
export type RunStatus = Schemas["RunStatus"];
/** `pending | running | waiting | succeeded | failed | skipped | cancelled`. */
export type StepStatus = Schemas["StepStatus"];
/** The body of approve and reject: `{ comment? }`. */
export type Decision = Schemas["Decision"];
/** Every API error: `{ error: { code, message } }`. */
export type ErrorBody = Schemas["ErrorBody"];

/** What every read shows in place of a secret's value. */
export const SECRET_MASK = "********";

/** The default per-request timeout. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** The default `timeoutMs` of {@link TrellisClient.waitRun}. */
export const DEFAULT_WAIT_TIMEOUT_MS = 60_000;

/** The longest the server holds one `GET /v1/runs/{id}?waitMs=` open. */
const MAX_WAIT_MS = 60_000;

/**
 * The shortest interval between two polls of {@link TrellisClient.waitRun} when the
 * server answers early with the run still active (a server or proxy that ignores
 * `waitMs`), so the loop never spins.
 */
const MIN_POLL_INTERVAL_MS = 250;

/** Read-only fields of an {@link Orchestration} that a {@link Definition} refuses. */
const READ_ONLY_FIELDS = ["id", "version", "createdAt", "updatedAt"] as const;

/**
 * The subset of `fetch` the client uses; the platform `fetch` satisfies it, and so
 * does undici's or a test double.
 */
export type FetchLike = (
  url: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string | Uint8Array;
    signal: AbortSignal;
  },
) => Promise<{ ok: boolean; status: number; statusText: string; text(): Promise<string> }>;

/** How to reach a Trellis server. */
export interface TrellisClientOptions {
  /** Where `trellis serve` listens, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A bearer token (`TRELLIS_API_TOKEN`, or one from `POST /v1/tokens`). */
  token: string;
  /** Per-request timeout in milliseconds; default 30 000. */
  timeoutMs?: number;
  /** A `fetch` to use instead of the global one. */
  fetch?: FetchLike;
}

/** Bytes of a Wasm component: a `Uint8Array` (including a Node `Buffer`), an `ArrayBuffer` or any other view. */
export type FunctionBytes = Uint8Array | ArrayBuffer | ArrayBufferView;

/** Options of {@link TrellisClient.invokeFunction}. */
export interface InvokeOptions {
  /**
   * Handed to the function as its idempotency key (the `Idempotency-Key` header);
   * without it each call is its own execution with a fresh key.
   */
  idempotencyKey?: string;
}

/** Options of {@link TrellisClient.waitRun}. */
export interface WaitRunOptions {
  /** How long to wait in total, in milliseconds; default 60 000. `0` reads the run once. */
  timeoutMs?: number;
}

/** Options of {@link TrellisClient.listRuns}. */
export interface ListRunsOptions {
  /** Only runs in this status. */
  status?: RunStatus;
  /** At most this many runs (1 to 1000); without it, the server's default of 100. */
  limit?: number;
}

/**
 * Every failure of a {@link TrellisClient} call.
 *
 * - An API error: `status` is the HTTP status and `code` the API's stable snake_case
 *   code (`orchestration_not_found`, `invalid_encrypted_params`, `unauthorized`, …),
 *   `message` its explanation. Function errors also carry `details.retryable` and
 *   `details.logs`.
 * - No connection: `status` 0, `code` `"unreachable"`.
 * - No answer within the client's `timeoutMs`: `status` 0, `code` `"timeout"`.
 * - An answer that is not the API's JSON: the HTTP status, `code` `"invalid_response"`
 *   (or `"http_<status>"` for an error without the API's error body).
 *
 * @example
 * ```ts
 * try {
 *   await client.getOrchestration(id);
 * } catch (error) {
 *   if (error instanceof TrellisError && error.status === 404) { … }
 *   else throw error;
 * }
 * ```
 */
export class TrellisError extends Error {
  override readonly name = "TrellisError";
  /** The HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** A stable snake_case code: the API's, or `unreachable`, `timeout`, `invalid_response`. */
  readonly code: string;
  /** The API's `error` object as sent, when there was one (e.g. `retryable`, `logs`). */
  readonly details: ErrorBody["error"] | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { cause?: unknown; details?: ErrorBody["error"] } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.details = options.details;
  }
}

type QueryValue = string | number | boolean | undefined;

interface RequestOptions {
  query?: Record<string, QueryValue>;
  json?: unknown;
  bytes?: Uint8Array;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

interface Page<T> {
  data: T[];
  nextCursor?: string | null;
}

/**
 * A client for one Trellis server.
 *
 * ```ts
 * import { TrellisClient } from "@trellis/sdk";
 *
 * const client = new TrellisClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.TRELLIS_API_TOKEN! });
 * await client.createOrchestration({ name: 'Provision Repo', steps: [{ type: 'compute', functionId: 'fn-create-repo', encryptedParams: { API_KEY: { value: 'sk_live_...', encrypt: true } } }] });
 * ```
 *
 * ## Secrets: `encryptedParams`
 *
 * A compute step may carry `encryptedParams: { NAME: entry }`, secrets that only that
 * step's function receives (merged last into its input, so they win on a key
 * collision):
 *
 * - `{ value: "s3cr3t", encrypt: true }` stores a new secret. The server encrypts it
 *   before it reaches the database.
 * - Every read (create and update responses, get, list, runs) shows it masked as
 *   `{ value: "********", encrypted: true }`: the value never comes back.
 * - On update, send that masked entry back unchanged to keep the stored secret (for
 *   the same step id, name and functionId); omit the entry to remove the secret; send
 *   `{ value, encrypt: true }` again to replace it. `{ value: "********", encrypt: true }`
 *   is refused (400): the mask is never a secret.
 * - `{ value }` without `encrypt` (or `encrypt: false`) is a plain, unencrypted param.
 *
 * A step sent without an `id` is given one by the server, returned in the response;
 * keep it (send the orchestration back as read) so later updates find the step's
 * stored secrets.
 *
 * ## Errors
 *
 * Every method rejects with a {@link TrellisError}.
 */
export class TrellisClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly #token: string;
  readonly #fetch: FetchLike;

  constructor(options: TrellisClientOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("TrellisClient: options { baseUrl, token } are required");
    }
    const { baseUrl, token, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
    if (typeof baseUrl !== "string" || baseUrl === "") {
      throw new TypeError("TrellisClient: baseUrl is required, e.g. http://127.0.0.1:8080");
    }
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      throw new TypeError(`TrellisClient: baseUrl ${JSON.stringify(baseUrl)} is not a URL, e.g. http://127.0.0.1:8080`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new TypeError(`TrellisClient: baseUrl must be http:// or https://, got ${parsed.protocol}`);
    }
    if (typeof token !== "string" || token === "") {
      throw new TypeError("TrellisClient: token is required (the server's TRELLIS_API_TOKEN)");
    }
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new TypeError("TrellisClient: timeoutMs must be a positive number of milliseconds");
    }
    const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (typeof fetchImpl !== "function") {
      throw new TypeError("TrellisClient: no global fetch (Node 18 or later needed); pass options.fetch");
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.timeoutMs = timeoutMs;
    this.#token = token;
    this.#fetch = fetchImpl;
  }

  // ---------------------------------------------------------------- orchestrations

  /**
   * Creates an orchestration: `POST /v1/orchestrations` → 201.
   *
   * Secrets go in a compute step's `encryptedParams` as `{ value, encrypt: true }`;
   * the response shows them masked (`{ value: "********", encrypted: true }`). Steps
   * sent without `id` get one assigned by the server, returned here. Every function a
   * step names must already be uploaded.
   *
   * Passing an {@link Orchestration} you read (to copy it) works: its read-only
   * fields (`id`, `version`, `createdAt`, `updatedAt`) are not sent. Its masked
   * secrets cannot be copied, though: a new orchestration has no stored value to
   * keep, so the server refuses them (400); send them as new secrets instead.
   *
   * @returns the stored orchestration, masked, with its `id` and `version` 1.
   */
  async createOrchestration(body: Definition): Promise<Orchestration> {
    return this.#request<Orchestration>("POST", "/v1/orchestrations", { json: definitionBody(body) });
  }

  /**
   * Replaces an orchestration's definition: `PUT /v1/orchestrations/{id}` (a full
   * replace; `version` goes up by one, runs already started keep theirs).
   *
   * For each `encryptedParams` entry of a compute step:
   * - the masked entry as read back, `{ value: "********", encrypted: true }`, keeps
   *   the stored secret of the same step id and name while the step calls the same
   *   function (a step pointed elsewhere needs its secrets entered again);
   * - `{ value, encrypt: true }` stores a new secret;
   * - an entry left out is removed.
   *
   * So the usual edit is: {@link getOrchestration}, change what you need, send it
   * back. The read-only fields of an {@link Orchestration} (`id`, `version`,
   * `createdAt`, `updatedAt`) are dropped before sending, so the object read can be
   * passed as it is.
   *
   * @returns the updated orchestration, masked.
   */
  async updateOrchestration(id: string, body: Definition): Promise<Orchestration> {
    return this.#request<Orchestration>("PUT", `/v1/orchestrations/${segment(id, "id")}`, {
      json: definitionBody(body),
    });
  }

  /**
   * Reads one orchestration: `GET /v1/orchestrations/{id}`. Secrets read back as
   * `{ value: "********", encrypted: true }`; plain params as they were sent.
   */
  async getOrchestration(id: string): Promise<Orchestration> {
    return this.#request<Orchestration>("GET", `/v1/orchestrations/${segment(id, "id")}`);
  }

  /**
   * Lists every orchestration, masked: `GET /v1/orchestrations`, following
   * `nextCursor` until the last page.
   */
  async listOrchestrations(): Promise<Orchestration[]> {
    return this.#list<Orchestration>("/v1/orchestrations");
  }

  /** Deletes an orchestration: `DELETE /v1/orchestrations/{id}` → 204. */
  async deleteOrchestration(id: string): Promise<void> {
    await this.#request<undefined>("DELETE", `/v1/orchestrations/${segment(id, "id")}`);
  }

  // ------------------------------------------------------------------------ functions

  /**
   * Uploads (or replaces) a Wasm component: `PUT /v1/functions/{id}` with the bytes as
   * `application/wasm`. The server checks it is a component of the Trellis world
   * (400 `invalid_wasm` otherwise). Uploading the same bytes again changes nothing.
   *
   * @param id - the `functionId`, `[a-z0-9][a-z0-9-_]{0,62}`
   * @param bytes - the component, e.g. `await readFile("digest.wasm")`
   */
  async uploadFunction(id: string, bytes: FunctionBytes): Promise<TrellisFunction> {
    return this.#request<TrellisFunction>("PUT", `/v1/functions/${segment(id, "id")}`, {
      bytes: toBytes(bytes),
    });
  }

  /** Lists every function: `GET /v1/functions`, following `nextCursor`. */
  async listFunctions(): Promise<TrellisFunction[]> {
    return this.#list<TrellisFunction>("/v1/functions");
  }

  /** Reads one function's record and settings: `GET /v1/functions/{id}`. */
  async getFunction(id: string): Promise<TrellisFunction> {
    return this.#request<TrellisFunction>("GET", `/v1/functions/${segment(id, "id")}`);
  }

  /**
   * Invokes a function directly: `POST /v1/functions/{id}/invoke` with `params` as its
   * triggerParams (a JSON object). A function that fails rejects with a
   * {@link TrellisError} of status 422 (504 on its deadline) whose `details` carry
   * `retryable` and the call's `logs`.
   */
  async invokeFunction(
    id: string,
    params: Record<string, unknown> = {},
    options: InvokeOptions = {},
  ): Promise<InvokeResult> {
    const headers: Record<string, string> = {};
    if (options.idempotencyKey !== undefined) headers["idempotency-key"] = options.idempotencyKey;
    return this.#request<InvokeResult>("POST", `/v1/functions/${segment(id, "id")}/invoke`, {
      json: params,
      headers,
    });
  }

  // ----------------------------------------------------------------------------- runs

  /**
   * Starts a run of an orchestration's current version:
   * `POST /v1/orchestrations/{id}/runs` → 202 `{ id, status }`. The run proceeds in
   * the background; follow it with {@link waitRun} or {@link getRun}.
   *
   * @param body - `{ input }`, available to steps as `input` and merged first into
   *   every compute step's function input
   */
  async startRun(orchestrationId: string, body: StartRun = {}): Promise<StartedRun> {
    const json: StartRun = body.input === undefined ? {} : { input: body.input };
    return this.#request<StartedRun>("POST", `/v1/orchestrations/${segment(orchestrationId, "orchestrationId")}/runs`, {
      json,
    });
  }

  /** Reads a run with every step's status and output: `GET /v1/runs/{runId}`. */
  async getRun(runId: string): Promise<Run> {
    return this.#request<Run>("GET", `/v1/runs/${segment(runId, "runId")}`);
  }

  /**
   * Waits until a run is no longer `pending` or `running`, that is `waiting` (for an
   * approval), `completed`, `failed` or `cancelled`, and returns it; when
   * `timeoutMs` (default 60 000) elapses first, returns the run as it is then (check
   * its `status`). It does not throw on a timeout.
   *
   * Long-polls `GET /v1/runs/{runId}?waitMs=N`: the server holds each request up to N
   * ms (at most 60 000) and answers as soon as the run settles, so waiting costs one
   * request per minute, not a busy loop.
   */
  async waitRun(runId: string, options: WaitRunOptions = {}): Promise<Run> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new TypeError("waitRun: timeoutMs must be a number of milliseconds, 0 or more");
    }
    const path = `/v1/runs/${segment(runId, "runId")}`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waitMs = Math.max(0, Math.min(MAX_WAIT_MS, Math.ceil(deadline - Date.now())));
      const sentAt = Date.now();
      const run = await this.#request<Run>("GET", path, {
        query: { waitMs },
        // The server holds the request for waitMs; the client's timeout applies on top.
        timeoutMs: waitMs + this.timeoutMs,
      });
      if (!isActive(run.status)) return run;
      const now = Date.now();
      if (now >= deadline) return run;
      const elapsed = now - sentAt;
      if (elapsed < MIN_POLL_INTERVAL_MS) {
        await sleep(Math.min(MIN_POLL_INTERVAL_MS - elapsed, deadline - now));
      }
    }
  }

  /**
   * Lists an orchestration's runs, newest first: `GET /v1/orchestrations/{id}/runs`.
   * Listed runs carry no `steps`; read one with {@link getRun} for those.
   *
   * @param options - `status` to keep only runs in that status; `limit` for at most
   *   that many (1 to 1000; the server's default is 100)
   */
  async listRuns(orchestrationId: string, options: ListRunsOptions = {}): Promise<Run[]> {
    const { status, limit } = options;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw new TypeError("listRuns: limit must be a positive integer");
    }
    return this.#list<Run>(
      `/v1/orchestrations/${segment(orchestrationId, "orchestrationId")}/runs`,
      { status },
      limit,
    );
  }

  /**
   * Approves a waiting approval step: `POST /v1/runs/{runId}/steps/{stepId}/approve`.
   * The step's output becomes `{ approved: true, decidedBy, comment, decidedAt }` and
   * the run goes on. 409 when the run is not waiting on that step.
   *
   * @returns the run after the decision.
   */
  async approveStep(runId: string, stepId: string, body: Decision = {}): Promise<Run> {
    return this.#decide("approve", runId, stepId, body);
  }

  /**
   * Rejects a waiting approval step: `POST /v1/runs/{runId}/steps/{stepId}/reject`.
   * The step's output becomes `{ approved: false, decidedBy, comment, decidedAt }`;
   * the run fails unless the step says `onReject: "continue"`.
   *
   * @returns the run after the decision.
   */
  async rejectStep(runId: string, stepId: string, body: Decision = {}): Promise<Run> {
    return this.#decide("reject", runId, stepId, body);
  }

  /**
   * Cancels a run that has not ended: `POST /v1/runs/{runId}/cancel`. Its remaining
   * steps are `cancelled`; 409 when it has already ended.
   *
   * @returns the cancelled run.
   */
  async cancelRun(runId: string): Promise<Run> {
    return this.#request<Run>("POST", `/v1/runs/${segment(runId, "runId")}/cancel`);
  }

  // -------------------------------------------------------------------------- plumbing

  async #decide(action: "approve" | "reject", runId: string, stepId: string, body: Decision): Promise<Run> {
    const json: Decision = body.comment === undefined ? {} : { comment: body.comment };
    return this.#request<Run>(
      "POST",
      `/v1/runs/${segment(runId, "runId")}/steps/${segment(stepId, "stepId")}/${action}`,
      { json },
    );
  }

  /** Every item of a list route, page by page, up to `max` when given. */
  async #list<T>(path: string, query: Record<string, QueryValue> = {}, max?: number): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (;;) {
      const limit = max === undefined ? undefined : max - items.length;
      const page = await this.#request<Page<T>>("GET", path, { query: { ...query, limit, cursor } });
      if (page === null || typeof page !== "object" || !Array.isArray(page.data)) {
        throw new TrellisError(200, "invalid_response", `GET ${path}: expected { data: [...] } from Trellis`);
      }
      items.push(...page.data);
      const next = page.nextCursor;
      // A repeated cursor would loop forever; treat it as the end.
      if (typeof next !== "string" || next === "" || seen.has(next)) break;
      if (max !== undefined && items.length >= max) break;
      seen.add(next);
      cursor = next;
    }
    return max === undefined ? items : items.slice(0, max);
  }

  async #request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = this.baseUrl + path + queryString(options.query);
    const headers: Record<string, string> = {
      accept: "application/json",
      ...options.headers,
      authorization: `Bearer ${this.#token}`,
    };
    let body: string | Uint8Array | undefined;
    if (options.bytes !== undefined) {
      headers["content-type"] = "application/wasm";
      body = options.bytes;
    } else if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const signal = AbortSignal.timeout(timeoutMs);
    const what = `${method} ${path}`;

    let status: number;
    let statusText: string;
    let ok: boolean;
    let text: string;
    try {
      const response = await this.#fetch(url, body === undefined ? { method, headers, signal } : { method, headers, body, signal });
      ({ status, statusText, ok } = response);
      text = await response.text();
    } catch (error) {
      // The only signal is ours, so an aborted one means our timeout fired (while
      // connecting, waiting for headers or reading the body).
      if (signal.aborted) {
        throw new TrellisError(0, "timeout", `${what}: Trellis at ${this.baseUrl} did not answer within ${timeoutMs} ms`, {
          cause: error,
        });
      }
      throw new TrellisError(
        0,
        "unreachable",
        `${what}: could not reach Trellis at ${this.baseUrl} (${describeCause(error)}); check that \`trellis serve\` is running at ${this.baseUrl}`,
        { cause: error },
      );
    }

    if (!ok) throw errorFromResponse(what, status, statusText, text);
    if (status === 204 || text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new TrellisError(status, "invalid_response", `${what}: Trellis answered ${status} with a body that is not JSON`, {
        cause: error,
      });
    }
  }
}

/** `pending` and `running` runs are still moving; every other status is settled. */
function isActive(status: RunStatus | string): boolean {
  return status === "pending" || status === "running";
}

/** A path segment: a non-empty string, percent-encoded. */
function segment(value: string, name: string): string {
  // An empty id would address the collection instead (`/v1/orchestrations/`).
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`${name} must be a non-empty string`);
  }
  // URL parsers resolve `.` and `..` segments (even percent-encoded), which would
  // change which route is called; no Trellis id is either.
  if (value === "." || value === "..") {
    throw new TypeError(`${name} must not be "${value}"`);
  }
  return encodeURIComponent(value);
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  if (query === undefined) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.append(key, String(value));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/** The definition without the read-only fields an {@link Orchestration} adds. */
function definitionBody(body: Definition): Definition {
  if (body === null || typeof body !== "object") {
    throw new TypeError("the orchestration body must be an object { name, description?, steps }");
  }
  const copy: Record<string, unknown> = { ...body };
  for (const field of READ_ONLY_FIELDS) delete copy[field];
  return copy as Definition;
}

function toBytes(bytes: FunctionBytes): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new TypeError("uploadFunction: bytes must be a Uint8Array, Buffer or ArrayBuffer");
}

function errorFromResponse(what: string, status: number, statusText: string, text: string): TrellisError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: unknown } | undefined)?.error;
  if (error !== null && typeof error === "object") {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (typeof code === "string" && typeof message === "string") {
      return new TrellisError(status, code, message, { details: error as ErrorBody["error"] });
    }
  }
  // Not the API's error shape: a proxy, or not a Trellis server at all.
  const reason = statusText === "" ? "" : ` ${statusText}`;
  return new TrellisError(status, `http_${status}`, `${what}: HTTP ${status}${reason} without a Trellis error body`);
}

/** The most telling part of a fetch failure, e.g. `ECONNREFUSED`. */
function describeCause(error: unknown): string {
  const cause = (error as { cause?: unknown } | null)?.cause;
  for (const candidate of [cause, error]) {
    if (candidate !== null && typeof candidate === "object") {
      const { code, message } = candidate as { code?: unknown; message?: unknown };
      if (typeof code === "string" && code !== "") return code;
      if (typeof message === "string" && message !== "" && candidate !== error) return message;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
