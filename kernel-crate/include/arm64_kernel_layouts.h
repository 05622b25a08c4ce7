/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The arm64 kernel structures orcwalk reads, per supported layout, declared as the kernel does
 * (arch/arm64/include/asm/ptrace.h, stacktrace/frame.h, processor.h). tests/c_layout.rs checks
 * that orcwalk's KernelLayout descriptions give the same offsets.
 */
#ifndef ORCWALK_ARM64_KERNEL_LAYOUTS_H
#define ORCWALK_ARM64_KERNEL_LAYOUTS_H

typedef unsigned long long u64;
typedef unsigned int u32;
typedef int s32;

struct frame_record {
	u64 fp;
	u64 lr;
};

/* v6.13+ */
#define FRAME_META_TYPE_NONE		0
#define FRAME_META_TYPE_FINAL		1
#define FRAME_META_TYPE_PT_REGS		2

struct frame_record_meta {
	struct frame_record record;
	u64 type;
};

struct user_pt_regs {
	u64 regs[31];
	u64 sp;
	u64 pc;
	u64 pstate;
};

/* v6.12 and earlier (back to v5.10). */
struct pt_regs_v6_12 {
	union {
		struct user_pt_regs user_regs;
		struct {
			u64 regs[31];
			u64 sp;
			u64 pc;
			u64 pstate;
		};
	};
	u64 orig_x0;
	s32 syscallno;
	u32 unused2;
	u64 sdei_ttbr1;
	u64 pmr_save;
	u64 stackframe[2];
	u64 lockdep_hardirqs;
	u64 exit_rcu;
};

/* v6.13 to v6.17: frame_record_meta replaces stackframe[2], pmr moves into the syscallno word. */
struct pt_regs_v6_13 {
	union {
		struct user_pt_regs user_regs;
		struct {
			u64 regs[31];
			u64 sp;
			u64 pc;
			u64 pstate;
		};
	};
	u64 orig_x0;
	s32 syscallno;
	u32 pmr;
	u64 sdei_ttbr1;
	struct frame_record_meta stackframe;
	u64 lockdep_hardirqs;
	u64 exit_rcu;
};

/* After the generic IRQ entry conversion: the two EL1-only fields are gone. */
struct pt_regs_generic_entry {
	union {
		struct user_pt_regs user_regs;
		struct {
			u64 regs[31];
			u64 sp;
			u64 pc;
			u64 pstate;
		};
	};
	u64 orig_x0;
	s32 syscallno;
	u32 pmr;
	u64 sdei_ttbr1;
	struct frame_record_meta stackframe;
};

/* thread_struct.cpu_context: what cpu_switch_to saved for a blocked task. */
struct cpu_context {
	unsigned long x19, x20, x21, x22, x23, x24, x25, x26, x27, x28;
	unsigned long fp;
	unsigned long sp;
	unsigned long pc;
};

#endif
