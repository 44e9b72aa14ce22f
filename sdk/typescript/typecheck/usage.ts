// Compiled by `npm run typecheck`, never run: proves that the README's examples and the
// announcement's snippet type-check against the generated types. A change of the
// OpenAPI document that breaks them fails here.
import { readFile } from "node:fs/promises";
import {
  SECRET_MASK,
  TrellisClient,
  TrellisError,
  type ComputeStep,
  type Definition,
  type Orchestration,
  type ParamEntry,
  type Run,
  type RunStatus,
  type TrellisFunction,
} from "../src/index.js";

export async function usage(): Promise<void> {
  const client = new TrellisClient({ baseUrl: "http://127.0.0.1:8080", token: "t", timeoutMs: 10_000 });

  const fn: TrellisFunction = await client.uploadFunction("fn-create-repo", await readFile("digest.wasm"));
  fn.sha256.toLowerCase();

  // The announcement's snippet, verbatim.
  await client.createOrchestration({ name: 'Provision Repo', steps: [{ type: 'compute', functionId: 'fn-create-repo', encryptedParams: { API_KEY: { value: 'sk_live_...', encrypt: true } } }] });

  const created: Orchestration = await client.createOrchestration({
    name: "Provision Repo",
    description: "approve, then provision",
    steps: [
      { id: "approve", type: "approval", message: "Create it?" },
      {
        type: "compute",
        functionId: "fn-create-repo",
        params: { org: "{{ input.org }}" },
        encryptedParams: { API_KEY: { value: "sk_live_...", encrypt: true } },
      },
    ],
  });

  // Update: read, keep one secret as read back, drop another, send it back.
  const current = await client.getOrchestration(created.id);
  const steps = current.steps.map((step) => {
    if (step.type !== "compute") return step;
    const kept: Record<string, ParamEntry> = {};
    for (const [name, entry] of Object.entries(step.encryptedParams ?? {})) {
      if (name === "API_KEY" && entry.value === SECRET_MASK && entry.encrypted === true) kept[name] = entry;
    }
    const compute: ComputeStep = { ...step, encryptedParams: kept };
    return compute;
  });
  await client.updateOrchestration(current.id, { ...current, steps });
  const body: Definition = { name: current.name, steps: current.steps };
  await client.updateOrchestration(current.id, body);

  // README, "Updating".
  {
    const id = created.id;
    const current = await client.getOrchestration(id);
    const [step] = current.steps;
    if (step?.type === "compute") {
      const { OLD_TOKEN, ...kept } = step.encryptedParams ?? {};
      void OLD_TOKEN;
      await client.updateOrchestration(id, {
        ...current,
        steps: [{ ...step, encryptedParams: { ...kept, NEW_TOKEN: { value: "t0k3n", encrypt: true } } }],
      });
    }
  }

  // README, "Runs and waitRun".
  {
    const orchestrationId = created.id;
    const { id: runId } = await client.startRun(orchestrationId, { input: { org: "acme" } });
    let run = await client.waitRun(runId, { timeoutMs: 120_000 });
    if (run.status === "waiting") {
      await client.approveStep(runId, "approve", { comment: "looks good" });
      run = await client.waitRun(runId, { timeoutMs: 120_000 });
    }
    console.log(run.status, run.steps?.map((step) => [step.id, step.status, step.output]));
  }

  const started = await client.startRun(created.id, { input: { org: "acme" } });
  const waited: Run = await client.waitRun(started.id, { timeoutMs: 30_000 });
  const status: RunStatus = waited.status;
  if (status === "waiting") await client.approveStep(started.id, "approve", { comment: "ok" });
  await client.rejectStep(started.id, "approve");
  await client.cancelRun(started.id);
  const runs: Run[] = await client.listRuns(created.id, { status: "waiting", limit: 10 });
  runs.map((run) => run.id);
  const again = await client.getRun(started.id);
  again.steps?.map((step) => [step.id, step.status, step.output]);

  const result = await client.invokeFunction("echo", { hello: "world" }, { idempotencyKey: "k1" });
  result.logs.map((entry) => entry.message);
  const durationMs: number = result.durationMs;
  durationMs.toFixed(1);
  (await client.listFunctions()).map((f) => f.settings.timeoutMs);
  (await client.listOrchestrations()).map((o) => o.version);
  await client.getFunction("echo");
  await client.deleteOrchestration(created.id);

  try {
    await client.getOrchestration("does-not-exist");
  } catch (error) {
    if (error instanceof TrellisError) {
      const s: number = error.status;
      const c: string = error.code;
      const m: string = error.message;
      void [s, c, m, error.details];
    }
  }
}
