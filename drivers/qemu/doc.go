// Package qemu boots the emulated device: a Linux kernel and initramfs under
// qemu-system-x86_64, with the serial console on a pty, virtio disks, a tap network card and
// QMP for power control.
//
// Start runs QEMU paused (-S), learns the console's pty from QMP (query-chardev), opens it,
// and only then lets the guest run (QMP cont), so the console shows everything the guest
// prints from the kernel's first line on. The VM reads the console until the caller hands the
// port over with ReleaseConsole (for example to drivers/serial, opening VM.PTY()):
//
//	vm, err := qemu.Start(ctx, qemu.Options{Name: "dev0", Kernel: k, Initramfs: i, ...})
//	if err != nil { ... }
//	defer vm.Kill()
//	if _, err := vm.Expect(ctx, regexp.MustCompile(`^refdev ready$`)); err != nil { ... }
//	vm.ReleaseConsole()
//
// Power: the guest's own reboot(2) resets the machine and QEMU keeps running (the pty stays);
// Reset is the reset button; PowerCut quits QEMU at once, so the guest's RAM, page cache
// included, is lost while every write the guest had handed to its virtual disk stays. Disks
// use cache=writeback: the guest's flushes reach the host file.
//
// The accelerator is KVM when /dev/kvm can be opened and hardware KVM (kvm_intel or
// kvm_amd live, and the CPU's vmx or svm flag) is behind it, TCG otherwise (boot to a ready device takes about 4 s under TCG on
// one core); HostAccel says which and why. CreateTap and MakeExt4 make the host-side network
// link and disk images; they need root (CAP_NET_ADMIN), iproute2 and e2fsprogs.
//
// Tests boot a real guest: they need qemu-system-x86_64 (Debian package qemu-system-x86) and
// the kernel cache (`make qemu-image` or scripts/fetch-kernel.sh), and root for the tap. They
// skip when one is missing, and fail instead when CI=true. docs/QEMU.md has the details.
package qemu
