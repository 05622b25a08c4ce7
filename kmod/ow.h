/* SPDX-License-Identifier: GPL-2.0 */
/*
 * orcwalk.ko: orcwalk inside Debian's arm64 kernel, next to the kernel's own reliable unwinder.
 * ow_kernel.c finds what the walk needs in the running kernel, ow_round.c compares the two
 * walkers, ow_main.c loads the table and reports through debugfs.
 */
#ifndef OW_H
#define OW_H

#include <linux/types.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include "orcwalk.h"

#define OW_MAX_FRAMES	128
#define OW_NR_REASONS	32

/* Everything found in the running kernel at load time (KASLR on: run-time addresses). */
struct ow_kernel {
	unsigned long (*lookup)(const char *name);
	int (*save_reliable)(struct task_struct *tsk, unsigned long *store, unsigned int size);
	int (*call_func)(struct task_struct *p, task_call_f func, void *arg);
	void (*put_stack)(struct task_struct *tsk);
	unsigned int (*save_regs)(struct pt_regs *regs, unsigned long *store, unsigned int size,
				  unsigned int skip);
	int (*size_offset)(unsigned long addr, unsigned long *size, unsigned long *offset);
	unsigned long (*graph_ret_addr)(struct task_struct *task, int *idx, unsigned long ret,
					unsigned long *retp);
	unsigned long (*kretprobe_ret_addr)(struct task_struct *tsk, void *fp, struct llist_node **cur);
	unsigned long text_start, text_end, entry_start, entry_end;
	unsigned long fgraph_return, kretprobe_trampoline;
	unsigned long ftrace_callsite;			/* ftrace_caller's return from the callback */
	unsigned long irq_stack_ptr, overflow_stack;	/* per-CPU variables */
	unsigned long slide;				/* KASLR offset */
	u8 build_id[20];
	unsigned int build_id_len;
};

extern struct ow_kernel ow_k;
extern struct orcwalk_context ow_base;	/* table, layout, text: filled once */

int ow_kernel_init(void);
/* One walk's callback state (orcwalk_context.ctx): the task, and where the trampoline lookups
 * stand, as arm64's own unwinder keeps them (kunwind_state.graph_idx, kr_cur). */
struct ow_walk {
	struct task_struct *task;
	const struct orcwalk_stack *stacks;	/* the walk's stacks, pinned while it runs */
	unsigned int nr_stacks;
	int graph_idx;
	struct llist_node *kr_cur;
};

/* orcwalk's callbacks: a non-faulting read, function bounds from kallsyms, and the return
 * addresses that ftrace's return_to_handler and the kretprobe trampoline stand in for. */
bool ow_recover(void *ctx, unsigned int which, unsigned long long fp, unsigned long long pc,
		unsigned long long *out);
bool ow_read(void *ctx, unsigned long long addr, unsigned long long *out);
bool ow_function(void *ctx, unsigned long long pc, unsigned long long *start, unsigned long long *end);
/* The module's own threads run module code, which has no table: they are not counted. */
bool ow_is_waker(const struct task_struct *p);
int ow_round(struct seq_file *m);
void ow_total(struct seq_file *m);
void ow_reset(void);

#endif
