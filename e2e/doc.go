// Package e2e runs the hilt binary end to end against simulated devices: a compliant run
// that must pass, flawed runs that must fail exactly the checks each flaw names (the
// detection matrix), bad input that must exit 2 with a clear message, and a run on a
// real Mosquitto broker. These are the tests that prove the verdicts.
package e2e
