// Package catalog is hilt's one registry of checks, requirements and Ginkgo labels.
//
// Every check of the baseline (docs/LABELS.md, and the design's BASELINE.md) has a stable ID
// such as "SU-02", a NIST IR 8259A capability, the 8259A elements and ETSI EN 303 645
// provisions it traces to, and whether it changes a unit for good (wipe, version bump, power
// cut). Suites take their Ginkgo labels from Labels, the CLI checks a user's --label-filter
// with ValidateLabelFilter before any spec runs, and the reports package combines check
// verdicts into requirement verdicts with NISTElements and ETSIProvisions.
//
// The package has no state beyond its tables and no dependencies on the rest of hilt; its tests
// run with `go test ./harness/catalog/`.
package catalog
