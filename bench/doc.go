// Package bench measures the presence engine the way its users run it, and puts
// every figure beside the raw NATS figure for the same work, measured in the same
// run on the same server, as a ratio: the machines are shared and noisy, and only
// ratios compare across runs.
//
// A run starts an engine (a `presence serve` child process, or in this process),
// measures the raw baselines on its server (JetStream async publish with and
// without expected-last-subject-sequence, an ordered-consumer read, fan-out to M
// ordered consumers, core NATS fan-out to M subscribers), then the engine itself:
// appends through the service, the fold of the log into a fresh projection, and
// fan-out to M subscribers that each read the current status of every change they
// are handed, remote (each its own NATS connection, following the engine's
// repeats on core NATS, which carry the status, and reading over the service to
// catch up) or in-process (handlers sharing one projection replica). Latency
// runs from the writer's acknowledgement to the handler having read the current
// status. Then endpoints: heartbeats of live endpoints through the service,
// against core NATS request/reply to a responder that answers at once, and the
// engine's heap per live endpoint when the engine runs in this process.
//
// Run is safe to call once at a time; nothing in the package is global.
package bench
