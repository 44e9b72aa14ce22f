#!/usr/bin/env python3
"""Drives Trellis's MCP server with the official Python MCP SDK, as an AI agent would.

    python tests/mcp/mcp_client_test.py --transport stdio|http

Environment (all required):
    TRELLIS_URL        base URL of a running Trellis server, e.g. http://127.0.0.1:8080
    TRELLIS_API_TOKEN  a bearer token for it
    TRELLIS_BIN        the trellis binary; stdio runs `$TRELLIS_BIN mcp` (only needed for stdio)

The server needs the example functions `echo` and `digest` loaded. `digest` returns, for each
top-level key of its triggerParams, the lowercase hex SHA-256 of the value (a string's UTF-8
bytes, anything else its JSON text), so it shows which secrets a step received without showing them.

Prints one `ok` line per check and exits 0, or prints `FAIL <check>: <why>` and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

MASK = {"value": "********", "encrypted": True}

TOOLS = {
    "create_orchestration",
    "update_orchestration",
    "get_orchestration",
    "list_orchestrations",
    "delete_orchestration",
    "list_functions",
    "get_function",
    "invoke_function",
    "start_run",
    "get_run",
    "list_runs",
    "wait_run",
    "approve_step",
    "reject_step",
    "cancel_run",
}
READ_ONLY = {name for name in TOOLS if name.startswith(("get_", "list_"))} | {"wait_run"}
DESTRUCTIVE = {"delete_orchestration", "cancel_run"}

# One MCP request may take this long at most (wait_run holds up to 30 s here).
REQUEST_TIMEOUT_S = 90.0


class CheckFailed(Exception):
    pass


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class Recorder:
    """Taps the transport's read stream: keeps every message the server sent, as JSON text."""

    def __init__(self, inner: Any, sink: list[str]) -> None:
        self._inner = inner
        self._sink = sink

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    def _record(self, item: Any) -> Any:
        if isinstance(item, SessionMessage):
            self._sink.append(item.message.model_dump_json(by_alias=True))
        return item

    async def receive(self) -> Any:
        return self._record(await self._inner.receive())

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Recorder:
        return self

    async def __anext__(self) -> Any:
        return self._record(await self._inner.__anext__())

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class HttpLog:
    """Every HTTP exchange of the http transport: method, status, session ids, and an error's body."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []

    async def on_response(self, response: httpx2.Response) -> None:
        body = ""
        if response.status_code >= 400:
            await response.aread()
            body = response.text[:300]
        self.exchanges.append(
            {
                "method": response.request.method,
                "status": response.status_code,
                "sent_session": response.request.headers.get("mcp-session-id"),
                "session": response.headers.get("mcp-session-id"),
                "body": body,
            }
        )

    def last_error(self) -> str:
        for exchange in reversed(self.exchanges):
            if exchange["status"] >= 400:
                return f"{exchange['method']} /mcp -> HTTP {exchange['status']} {exchange['body']}"
        return ""

    def check_sessions(self) -> str:
        """initialize mints an mcp-session-id; every later successful response echoes the one sent."""
        check = "http mcp-session-id"
        if not self.exchanges:
            raise CheckFailed(f"{check}: no HTTP exchange recorded")
        first = self.exchanges[0]
        minted = first["session"]
        if not (first["method"] == "POST" and first["status"] == 200 and minted):
            raise CheckFailed(f"{check}: the initialize response has no mcp-session-id: {first}")
        echoed = 0
        for exchange in self.exchanges[1:]:
            if exchange["sent_session"] != minted:
                raise CheckFailed(f"{check}: the client sent {exchange['sent_session']!r}, not the minted {minted!r}")
            if 200 <= exchange["status"] < 300:
                if exchange["session"] != minted:
                    raise CheckFailed(f"{check}: a {exchange['method']} answer carries {exchange['session']!r}, not {minted!r}")
                echoed += 1
        others = ", ".join(f"{e['method']} -> {e['status']}" for e in self.exchanges if e["method"] != "POST")
        return f"minted {minted} on initialize, echoed on {echoed} later responses" + (f"; {others}" if others else "")


HTTP_LOG = HttpLog()


class Scenario:
    def __init__(self, session: ClientSession, transport: str) -> None:
        self.session = session
        self.transport = transport
        self.results: list[str] = []  # every tool result, serialised, for the leak check
        self.listings: list[str] = []  # every tools/list result, likewise
        self.cleanup: list[str] = []  # orchestrations to delete at the end
        self.tag = secrets.token_hex(4)
        self.plaintexts: list[str] = []  # the secrets sent, searched for in everything received
        self.orchestration_id = ""  # the secrets orchestration, for the error checks
        self.step_id = ""

    # -- reporting ---------------------------------------------------------------------------

    def ok(self, check: str, detail: str = "") -> None:
        print(f"ok   [{self.transport}] {check}" + (f": {detail}" if detail else ""), flush=True)

    def expect(self, condition: bool, check: str, why: str) -> None:
        if not condition:
            raise CheckFailed(f"{check}: {why}")

    # -- calling tools -----------------------------------------------------------------------

    async def call(self, check: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Calls `tool`; the result (error or not) is recorded for the leak check."""
        try:
            result = await self.session.call_tool(tool, arguments, read_timeout_seconds=REQUEST_TIMEOUT_S)
        except MCPError as error:
            raise CheckFailed(f"{check}: {tool} answered with a JSON-RPC error {error.code}: {error.error.message}")
        except RuntimeError as error:
            # The SDK validates structuredContent against the tool's outputSchema.
            raise CheckFailed(f"{check}: {tool}: {error}")
        self.results.append(dumps(result.model_dump(mode="json", by_alias=True)))
        return result

    async def success(self, check: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Calls `tool`, expects a result that is not an error, returns its structuredContent."""
        result = await self.call(check, tool, arguments)
        text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
        self.expect(not result.is_error, check, f"{tool} returned isError: {text[:500]}")
        structured = result.structured_content
        self.expect(isinstance(structured, dict), check, f"{tool} returned no structuredContent object: {structured!r}")
        # The text block carries the same JSON, for clients that read only text.
        try:
            from_text = json.loads(text)
        except ValueError:
            from_text = None
        self.expect(from_text == structured, check, f"{tool}: the text content is not the structuredContent JSON: {text[:300]}")
        return structured

    async def api_error(self, check: str, tool: str, arguments: dict[str, Any], code: str, status: int) -> None:
        """Calls `tool`, expects an API error as a tool error (isError) with `code`."""
        result = await self.call(check, tool, arguments)
        text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
        self.expect(result.is_error, check, f"{tool} did not return isError: {text[:300]}")
        self.expect(text.startswith(f"{code}: "), check, f"text is not `{code}: message`: {text[:300]}")
        error = (result.structured_content or {}).get("error") if isinstance(result.structured_content, dict) else None
        self.expect(isinstance(error, dict), check, f"structuredContent is not {{error: …}}: {result.structured_content!r}")
        self.expect(error.get("code") == code, check, f"error.code is {error.get('code')!r}, not {code!r}")
        self.expect(error.get("status") == status, check, f"error.status is {error.get('status')!r}, not {status}")
        self.expect(bool(error.get("message")), check, "error.message is empty")
        self.ok(check, text[:120])

    async def wait_for(self, check: str, run_id: str, status: str) -> dict[str, Any]:
        run = await self.success(check, "wait_run", {"runId": run_id, "timeoutMs": 30000})
        self.expect(
            run.get("status") == status,
            check,
            f"run {run_id} is {run.get('status')!r}, not {status!r}; error: {run.get('error')!r}",
        )
        return run

    async def create(self, check: str, body: dict[str, Any]) -> dict[str, Any]:
        orchestration = await self.success(check, "create_orchestration", body)
        self.expect(isinstance(orchestration.get("id"), str), check, f"no id in {orchestration!r}")
        self.cleanup.append(orchestration["id"])
        return orchestration

    # -- the scenario ------------------------------------------------------------------------

    async def run(self) -> None:
        await self.tools_list()
        await self.secrets_flow()
        await self.errors()
        await self.reads()
        await self.approvals()
        self.leak_check()

    async def tools_list(self) -> None:
        check = "tools/list"
        tools: list[types.Tool] = []
        cursor = None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await self.session.list_tools(params=params)
            self.listings.append(dumps(page.model_dump(mode="json", by_alias=True)))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        names = {tool.name for tool in tools}
        self.expect(TOOLS <= names, check, f"missing tools: {sorted(TOOLS - names)}")
        self.expect(len(tools) == len(names), check, "a tool name is listed twice")
        self.ok(check, f"{len(tools)} tools, all 15 expected present")
        for tool in tools:
            if tool.name not in TOOLS:
                continue
            check = f"tools/list {tool.name}"
            self.expect(bool(tool.description and tool.description.strip()), check, "no description")
            self.expect(tool.input_schema.get("type") == "object", check, f"inputSchema type is {tool.input_schema.get('type')!r}")
            self.expect(
                isinstance(tool.output_schema, dict) and tool.output_schema.get("type") == "object",
                check,
                f"outputSchema is not an object schema: {str(tool.output_schema)[:200]}",
            )
            notes = tool.annotations
            self.expect(notes is not None, check, "no annotations")
            if tool.name in READ_ONLY:
                self.expect(notes.read_only_hint is True, check, f"readOnlyHint is {notes.read_only_hint!r}, not true")
            else:
                self.expect(notes.read_only_hint is not True, check, "readOnlyHint is true on a tool that changes things")
            if tool.name in DESTRUCTIVE:
                self.expect(notes.destructive_hint is True, check, f"destructiveHint is {notes.destructive_hint!r}, not true")
            self.ok(check, f"readOnly={notes.read_only_hint} destructive={notes.destructive_hint}")

    async def secrets_flow(self) -> None:
        kept_plain = "sk_live_" + secrets.token_hex(24)
        removed_plain = "sk_live_" + secrets.token_hex(24)
        self.plaintexts += [kept_plain, removed_plain]
        name = f"mcp-client-test-secrets-{self.tag}"

        check = "create_orchestration with 2 encrypted params (no step id)"
        created = await self.create(
            check,
            {
                "name": name,
                "description": "made by tests/mcp/mcp_client_test.py",
                "steps": [
                    {
                        "type": "compute",
                        "functionId": "digest",
                        "params": {"plainParam": "visible"},
                        "encryptedParams": {
                            "KEPT_KEY": {"value": kept_plain, "encrypt": True},
                            "REMOVED_KEY": {"value": removed_plain, "encrypt": True},
                        },
                    }
                ],
            },
        )
        orchestration_id = created["id"]
        steps = created.get("steps") or []
        self.expect(len(steps) == 1, check, f"expected 1 step, got {steps!r}")
        step_id = steps[0].get("id")
        self.expect(isinstance(step_id, str) and step_id != "", check, f"the step got no id: {steps[0]!r}")
        self.expect(
            steps[0].get("encryptedParams") == {"KEPT_KEY": MASK, "REMOVED_KEY": MASK},
            check,
            f"encryptedParams not masked exactly: {steps[0].get('encryptedParams')!r}",
        )
        self.ok(check, f"id={orchestration_id} step id={step_id!r}, both masked")

        check = "get_orchestration is masked"
        got = await self.success(check, "get_orchestration", {"id": orchestration_id})
        got_steps = got.get("steps") or [{}]
        self.expect(got_steps[0].get("id") == step_id, check, f"step id changed: {got_steps!r}")
        self.expect(
            got_steps[0].get("encryptedParams") == {"KEPT_KEY": MASK, "REMOVED_KEY": MASK},
            check,
            f"encryptedParams not masked exactly: {got_steps[0].get('encryptedParams')!r}",
        )
        self.ok(check, f"version {got.get('version')}")

        check = "update_orchestration keeps one masked secret, drops the other"
        step = dict(got_steps[0])
        step["encryptedParams"] = {"KEPT_KEY": step["encryptedParams"]["KEPT_KEY"]}  # sent back as read
        updated = await self.success(
            check,
            "update_orchestration",
            {"id": orchestration_id, "name": got["name"], "description": got.get("description"), "steps": [step]},
        )
        updated_steps = updated.get("steps") or [{}]
        self.expect(updated_steps[0].get("id") == step_id, check, f"step id changed: {updated_steps!r}")
        self.expect(
            updated_steps[0].get("encryptedParams") == {"KEPT_KEY": MASK},
            check,
            f"expected only KEPT_KEY, masked: {updated_steps[0].get('encryptedParams')!r}",
        )
        self.expect(
            updated.get("version") == (got.get("version") or 0) + 1,
            check,
            f"version {updated.get('version')!r} is not {got.get('version')!r} + 1",
        )
        self.ok(check, f"version {updated.get('version')}")

        check = "start_run"
        run_input = f"input-{secrets.token_hex(8)}"
        started = await self.success(check, "start_run", {"orchestrationId": orchestration_id, "input": {"runInput": run_input}})
        run_id = started.get("id")
        self.expect(isinstance(run_id, str), check, f"no run id: {started!r}")
        self.expect(started.get("status") == "pending", check, f"status {started.get('status')!r}, not pending")
        self.ok(check, f"run {run_id}")

        check = "wait_run -> completed; digest got the kept secret only"
        run = await self.wait_for(check, run_id, "completed")
        run_steps = {s.get("id"): s for s in run.get("steps") or []}
        self.expect(step_id in run_steps, check, f"no step {step_id!r} in the run: {list(run_steps)}")
        output = run_steps[step_id].get("output")
        self.expect(isinstance(output, dict), check, f"step output is not an object: {output!r}")
        self.expect(output.get("KEPT_KEY") == sha256(kept_plain), check, f"KEPT_KEY digest is {output.get('KEPT_KEY')!r}, not sha256 of the kept secret")
        self.expect("REMOVED_KEY" not in output, check, f"the removed secret still reached the step: keys {sorted(output)}")
        self.expect(output.get("runInput") == sha256(run_input), check, f"runInput digest is {output.get('runInput')!r}")
        self.expect(output.get("plainParam") == sha256("visible"), check, f"plainParam digest is {output.get('plainParam')!r}")
        self.ok(check, f"output keys {sorted(output)}")

        check = "get_run"
        fetched = await self.success(check, "get_run", {"runId": run_id})
        self.expect(fetched.get("id") == run_id and fetched.get("status") == "completed", check, f"got {fetched.get('id')!r} {fetched.get('status')!r}")
        self.expect(fetched.get("orchestrationVersion") == updated.get("version"), check, f"orchestrationVersion {fetched.get('orchestrationVersion')!r}")
        self.ok(check)

        check = "list_runs status=completed"
        runs = await self.success(check, "list_runs", {"orchestrationId": orchestration_id, "status": "completed"})
        data = runs.get("data")
        self.expect(isinstance(data, list), check, f"no data list: {runs!r}")
        self.expect(run_id in {r.get("id") for r in data}, check, f"run {run_id} not listed")
        self.expect(all(r.get("status") == "completed" for r in data), check, f"statuses {[r.get('status') for r in data]}")
        self.ok(check, f"{len(data)} run(s)")

        self.orchestration_id = orchestration_id
        self.step_id = step_id

    async def errors(self) -> None:
        await self.api_error(
            "get_orchestration on a missing id -> isError orchestration_not_found",
            "get_orchestration",
            {"id": f"does-not-exist-{self.tag}"},
            "orchestration_not_found",
            404,
        )

        check = "update_orchestration with the mask and encrypt:true -> isError invalid_encrypted_params"
        current = await self.success(check, "get_orchestration", {"id": self.orchestration_id})
        step = dict(current["steps"][0])
        step["encryptedParams"] = {"KEPT_KEY": {"value": "********", "encrypt": True}}
        await self.api_error(
            check,
            "update_orchestration",
            {"id": self.orchestration_id, "name": current["name"], "steps": [step]},
            "invalid_encrypted_params",
            400,
        )
        check = "the refused update changed nothing"
        after = await self.success(check, "get_orchestration", {"id": self.orchestration_id})
        self.expect(after.get("version") == current.get("version"), check, f"version {current.get('version')} -> {after.get('version')}")
        self.expect(after["steps"][0].get("encryptedParams") == {"KEPT_KEY": MASK}, check, f"{after['steps'][0].get('encryptedParams')!r}")
        self.ok(check, f"version {after.get('version')}")

        await self.api_error(
            "update_orchestration with a stale version -> isError conflict",
            "update_orchestration",
            {"id": self.orchestration_id, "version": after["version"] - 1, "name": after["name"], "steps": after["steps"]},
            "conflict",
            409,
        )

    async def reads(self) -> None:
        check = "list_orchestrations"
        listed = await self.success(check, "list_orchestrations", {})
        data = listed.get("data")
        self.expect(isinstance(data, list), check, f"no data list: {str(listed)[:300]}")
        mine = [o for o in data if o.get("id") == self.orchestration_id]
        self.expect(len(mine) == 1, check, f"orchestration {self.orchestration_id} listed {len(mine)} times")
        self.expect(mine[0]["steps"][0].get("encryptedParams") == {"KEPT_KEY": MASK}, check, f"{mine[0]['steps'][0].get('encryptedParams')!r}")
        for orchestration in data:  # every secret of every orchestration is masked
            for step in orchestration.get("steps") or []:
                for name, entry in (step.get("encryptedParams") or {}).items():
                    if entry.get("encrypted"):
                        self.expect(entry == MASK, check, f"{orchestration.get('id')}/{step.get('id')}/{name} is not masked: {entry!r}")
        self.ok(check, f"{len(data)} orchestration(s), secrets masked")

        check = "list_functions"
        functions = await self.success(check, "list_functions", {})
        ids = {f.get("id") for f in functions.get("data") or []}
        self.expect({"digest", "echo"} <= ids, check, f"digest/echo not listed: {sorted(i for i in ids if i)}")
        self.ok(check, f"{len(ids)} function(s)")

        check = "get_function digest"
        function = await self.success(check, "get_function", {"functionId": "digest"})
        self.expect(function.get("id") == "digest", check, f"id {function.get('id')!r}")
        self.expect(isinstance(function.get("settings"), dict), check, f"no settings: {function!r}")
        self.ok(check, f"version {function.get('version')}")

        check = "invoke_function echo"
        params = {"greeting": f"hello-{self.tag}", "n": 3, "nested": {"list": [1, "two", None]}}
        invoked = await self.success(check, "invoke_function", {"functionId": "echo", "params": params})
        self.expect(invoked.get("output") == params, check, f"output {invoked.get('output')!r} is not the params")
        self.ok(check, f"durationMs {invoked.get('durationMs')}")

        await self.api_error(
            "get_function on a missing id -> isError function_not_found",
            "get_function",
            {"functionId": f"no-such-function-{self.tag}"},
            "function_not_found",
            404,
        )

    async def approvals(self) -> None:
        check = "create_orchestration with an approval step then a digest step"
        created = await self.create(
            check,
            {
                "name": f"mcp-client-test-approval-{self.tag}",
                "steps": [
                    {"type": "approval", "message": "go on?"},
                    {"type": "compute", "functionId": "digest"},
                ],
            },
        )
        orchestration_id = created["id"]
        step_ids = [s.get("id") for s in created.get("steps") or []]
        self.expect(len(step_ids) == 2 and all(step_ids) and len(set(step_ids)) == 2, check, f"step ids {step_ids!r}")
        approval_id, compute_id = step_ids
        self.ok(check, f"id={orchestration_id} steps {step_ids}")

        async def waiting_run(check: str) -> str:
            started = await self.success(check, "start_run", {"orchestrationId": orchestration_id, "input": {"who": self.tag}})
            run = await self.wait_for(check, started["id"], "waiting")
            statuses = {s.get("id"): s.get("status") for s in run.get("steps") or []}
            self.expect(statuses.get(approval_id) == "waiting", check, f"step statuses {statuses}")
            return started["id"]

        check = "approval run: wait_run -> waiting"
        run_id = await waiting_run(check)
        self.ok(check, f"run {run_id}")
        check = "approve_step with a comment"
        comment = f"approved by the MCP test {self.tag}"
        await self.success(check, "approve_step", {"runId": run_id, "stepId": approval_id, "comment": comment})
        run = await self.wait_for(check, run_id, "completed")
        steps = {s.get("id"): s for s in run.get("steps") or []}
        decision = steps[approval_id].get("output") or {}
        self.expect(decision.get("approved") is True, check, f"approval output {decision!r}")
        self.expect(decision.get("comment") == comment, check, f"comment {decision.get('comment')!r}")
        self.expect(steps[compute_id].get("status") == "succeeded", check, f"compute step {steps[compute_id].get('status')!r}")
        self.expect((steps[compute_id].get("output") or {}).get("who") == sha256(self.tag), check, f"compute output {steps[compute_id].get('output')!r}")
        self.ok(check, "-> completed")

        check = "reject_step"
        run_id = await waiting_run(check)
        await self.success(check, "reject_step", {"runId": run_id, "stepId": approval_id, "comment": "no"})
        run = await self.wait_for(check, run_id, "failed")
        steps = {s.get("id"): s for s in run.get("steps") or []}
        self.expect(steps[compute_id].get("status") != "succeeded", check, "the step after a rejection ran")
        self.ok(check, f"run {run_id} -> failed")

        check = "cancel_run"
        run_id = await waiting_run(check)
        cancelled = await self.success(check, "cancel_run", {"runId": run_id})
        self.expect(cancelled.get("status") == "cancelled", check, f"cancel_run returned status {cancelled.get('status')!r}")
        await self.wait_for(check, run_id, "cancelled")
        self.ok(check, f"run {run_id} -> cancelled")

        await self.api_error(
            "cancel_run on a cancelled run -> isError run_state_conflict",
            "cancel_run",
            {"runId": run_id},
            "run_state_conflict",
            409,
        )
        await self.api_error(
            "get_run on a missing id -> isError run_not_found",
            "get_run",
            {"runId": f"no-such-run-{self.tag}"},
            "run_not_found",
            404,
        )

        check = "delete_orchestration"
        deleted = await self.success(check, "delete_orchestration", {"id": orchestration_id})
        self.expect(deleted == {"id": orchestration_id, "deleted": True}, check, f"returned {deleted!r}")
        self.cleanup.remove(orchestration_id)
        self.ok(check)
        await self.api_error(
            "get_orchestration after delete -> isError orchestration_not_found",
            "get_orchestration",
            {"id": orchestration_id},
            "orchestration_not_found",
            404,
        )

    def leak_check(self) -> None:
        check = "leak check: no plaintext secret in any tool result"
        self.expect(len(self.plaintexts) == 2, check, "the secrets were not generated")
        for text in self.results + self.listings:
            for secret in self.plaintexts:
                self.expect(secret not in text and secret[8:] not in text, check, "a plaintext secret appears in a tool result")
        for text in self.results:  # (tools/list documents the stored form, so only call results here)
            self.expect("keyVersion" not in text, check, "a stored blob's keyVersion appears in a tool result")
        self.ok(check, f"{len(self.results)} tool results and {len(self.listings)} tools/list results searched")

    async def delete_leftovers(self) -> None:
        for orchestration_id in list(self.cleanup):
            with contextlib.suppress(Exception):
                await self.session.call_tool("delete_orchestration", {"id": orchestration_id}, read_timeout_seconds=30)


def env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise CheckFailed(f"configuration: environment variable {name} is not set")
    return value


@contextlib.asynccontextmanager
async def connect(transport: str, received: list[str], stderr_file: Any) -> AsyncIterator[ClientSession]:
    url = env("TRELLIS_URL").rstrip("/")
    token = env("TRELLIS_API_TOKEN")
    if transport == "stdio":
        binary = env("TRELLIS_BIN")
        if not os.access(binary, os.X_OK):
            raise CheckFailed(f"configuration: TRELLIS_BIN={binary} is not an executable file")
        server = StdioServerParameters(
            command=binary,
            args=["mcp"],
            env={"TRELLIS_URL": url, "TRELLIS_API_TOKEN": token, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
        )
        async with stdio_client(server, errlog=stderr_file) as (read, write):
            async with ClientSession(Recorder(read, received), write, read_timeout_seconds=REQUEST_TIMEOUT_S) as session:
                yield session
    else:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(30.0, read=REQUEST_TIMEOUT_S),
            event_hooks={"response": [HTTP_LOG.on_response]},
        )
        async with http, streamable_http_client(f"{url}/mcp", http_client=http) as (read, write):
            async with ClientSession(Recorder(read, received), write, read_timeout_seconds=REQUEST_TIMEOUT_S) as session:
                yield session


async def main(transport: str) -> None:
    received: list[str] = []  # every message the server sent
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as stderr_file:
        async with connect(transport, received, stderr_file) as session:
            init = await session.initialize()
            if not (init.capabilities and init.capabilities.tools is not None):
                raise CheckFailed("initialize: the server does not declare the tools capability")
            print(
                f"ok   [{transport}] initialize: {init.server_info.name} {init.server_info.version}, "
                f"protocol {init.protocol_version}",
                flush=True,
            )
            scenario = Scenario(session, transport)
            try:
                await scenario.run()
            finally:
                await scenario.delete_leftovers()
        # Beyond the tool results: every message the server sent and, for stdio, its log.
        check = "leak check: no plaintext secret in any server message"
        haystacks = list(received)
        searched = f"{len(received)} messages"
        if transport == "stdio":
            check += " or in the stdio server's stderr"
            stderr_file.seek(0)
            log = stderr_file.read()
            haystacks.append(log)
            searched += f", {len(log.splitlines())} log lines"
        for plaintext in scenario.plaintexts:
            if any(plaintext in text or plaintext[8:] in text for text in haystacks):
                raise CheckFailed(f"{check}: a plaintext secret appears")
        print(f"ok   [{transport}] {check}: {searched}", flush=True)
    if transport == "http":
        print(f"ok   [http] mcp-session-id: {HTTP_LOG.check_sessions()}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["stdio", "http"], required=True)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.transport))
    except CheckFailed as failure:
        print(f"FAIL [{args.transport}] {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
    except BaseException as error:  # a crash is a failure too, with its cause
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if isinstance(error, CheckFailed):
            print(f"FAIL [{args.transport}] {error}", file=sys.stderr, flush=True)
        else:
            http_error = HTTP_LOG.last_error()
            print(
                f"FAIL [{args.transport}] unexpected {type(error).__name__}: {error}"
                + (f" (last HTTP error: {http_error})" if http_error else ""),
                file=sys.stderr,
                flush=True,
            )
        sys.exit(1)
    print(f"PASS [{args.transport}] all MCP client checks passed", flush=True)
