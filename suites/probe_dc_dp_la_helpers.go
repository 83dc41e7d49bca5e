//go:build hilt_netprobe

package suites

import (
	"fmt"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/drivers/netprobe"
	"github.com/hilt-project/hilt/wire"
)

// The checks that stand on drivers/netprobe: DP-01 (capture) and LA-01 (port scan).

// dp01 captures the device's traffic and checks that all of it is TLS.
func (e *Env) dp01(ctx SpecContext, c *C) {
	in := e.S.Inst
	if in.CaptureInterface == "" {
		c.Errorf("no capture possible: the profile gives no capture_interface for unit %s (the host interface that carries all of its traffic)", e.S.Name)
	}
	if e.S.MQ == nil {
		c.Errorf("no MQTT broker in the profile: the device's telemetry flow cannot be awaited")
	}
	pcap := filepath.Join(c.Dir(), "dp01.pcapng")
	capt, err := netprobe.StartCapture(ctx, in.CaptureInterface, pcap, netprobe.WithHost(in.Address))
	if err != nil {
		c.Errorf("no capture possible on %s: %v", in.CaptureInterface, err)
	}
	stopped := false
	DeferCleanup(func() {
		if !stopped {
			capt.Stop()
		}
	})
	mq := e.S.MQ.Recorder().Mark()
	c.Must(e.S.Reboot(ctx), "reboot the device (it logs in to its broker at boot)")
	c.Must(e.S.Call(ctx, wire.IfaceMgmt, "config.get", nil, nil), "use the management API as admin")
	tele := e.awaitTelemetry(ctx, c, mq)
	stats, err := capt.Stop()
	stopped = true
	c.Must(err, "stop the capture on "+in.CaptureInterface)
	c.Evidence(pcap, fmt.Sprintf("capture of the device's traffic on %s (%d packets)", in.CaptureInterface, stats.Packets))

	secrets, names := e.wireSecrets(tele)
	an, err := netprobe.AnalyzeFile(ctx, pcap, netprobe.AnalyzeOptions{Host: in.Address, Secrets: secrets})
	c.Must(err, "decode the capture "+pcap)
	var summary strings.Builder
	for _, fl := range an.Flows {
		fmt.Fprintf(&summary, "%s\n", flowString(fl))
	}
	c.writeEvidence("flows.txt", "flows seen in the capture and their classification", []byte(summary.String()))
	if len(an.Flows) == 0 {
		c.Errorf("the capture on %s holds no flow to or from %s (%d packets): nothing observed", in.CaptureInterface, in.Address, stats.Packets)
	}
	var f findings
	for _, fl := range an.Flows {
		switch fl.Class {
		case netprobe.ClassTLS, netprobe.ClassEmpty:
		default:
			f.add("flow %s is not TLS (%s)", flowString(fl), fl.Class)
		}
	}
	for _, cr := range an.Creds {
		f.add("an MQTT CONNECT in cleartext carries the login of user %q", cr.Username)
	}
	for _, h := range an.Hits {
		f.add("%s found in the capture (%s encoding) at byte %d of the decoded streams", names[h.Secret], h.Encoding, h.Offset)
	}
	f.failIfAny(c, "the device's traffic is not all protected by TLS")
	for _, d := range e.declaredFlows() {
		if !anyFlow(an.Flows, in.Address, d) {
			c.Errorf("no %s flow (%s, server port %d) of the device was seen in the capture on %s: the declared flow was not observed",
				d.Name, d.Direction, d.Port, in.CaptureInterface)
		}
	}
	c.Note("%d flows seen, all TLS; none of %d secrets found in the capture", len(an.Flows), len(secrets))
}

// anyFlow reports whether flows hold one of the declared kind for the device at addr.
func anyFlow(flows []netprobe.Flow, addr string, d flowDecl) bool {
	for _, f := range flows {
		if f.ServerPort != d.Port {
			continue
		}
		switch d.Direction {
		case "in":
			if f.Server == addr {
				return true
			}
		default:
			if f.Client == addr {
				return true
			}
		}
	}
	return false
}

func flowString(f netprobe.Flow) string {
	return fmt.Sprintf("%s -> %s:%d %s", f.Client, f.Server, f.ServerPort, f.Class)
}
