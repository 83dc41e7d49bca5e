// Package reports holds the result model of a hilt run and writes every output file of it:
// junit.xml (Jenkins xUnit schema), compliance.json (for machines), compliance.md (for people),
// and the one-screen summary at the end of a run. It also decides the exit code and combines
// check verdicts into NIST IR 8259A and ETSI EN 303 645 requirement verdicts. docs/REPORTS.md
// documents the files, their fields, the verdict rules and the exit codes.
//
// A run's producer (the suites' reporter) fills a Run; the CLI then calls WriteAll with a
// Redactor built from the profile's secrets, prints Summary and exits with ExitCode. Shards of
// one run on different devices are combined with Merge before writing.
//
// The JUnit file is written from hilt's own model rather than by Ginkgo's JUnit reporter:
// Ginkgo's output carries attributes (testcase status, testsuite disabled) that the Jenkins
// schema hilt promises does not allow, and one testsuite per device needs the device results
// that only the model has.
//
// Tests: `go test ./reports/`. The schema test runs xmllint (Debian package libxml2-utils)
// against shared/junit/jenkins-junit-10.xsd beside the repository; with CI=true a missing
// xmllint or schema fails the test. `go test ./reports/ -update` rewrites the golden files.
package reports
