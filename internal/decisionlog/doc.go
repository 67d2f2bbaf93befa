// Package decisionlog writes sendguard's decision log: one JSON line per
// decision, as the client saw it (the decision id in x-sendguard-decision-id),
// with what the decision read and how long it took, and never a secret.
//
// Logging is asynchronous and bounded. Decider.Decide hands each result to
// a buffered channel without waiting: when the buffer is full the record is
// dropped and counted (Options.Dropped, sendguard_decision_log_dropped_total),
// so a slow or blocked sink never holds a decision. One goroutine encodes
// the records and writes them to the sink; Close stops taking records,
// writes what is buffered and closes the sink.
//
// What a line holds, and what it never holds:
//
//   - the API key never: only its id from the config (key_id);
//   - the recipient as an HMAC-SHA256 under a configured key (phone_hmac),
//     so that one recipient's decisions can be found and counted without
//     the log holding numbers; or omitted; or in plain E.164 when asked for;
//   - the message text only when asked for (Options.Message);
//   - the content signals the policy scored and the model's probabilities
//     (the p_ signals), which is the policy input a what-if replay needs.
//
// The file sink rotates by size; the HTTP sink posts batches in OPA's
// decision-log upload format (a gzipped JSON array of events), so an OPA
// log collector takes them.
package decisionlog
