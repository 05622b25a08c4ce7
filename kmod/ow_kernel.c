// SPDX-License-Identifier: GPL-2.0
/*
 * What orcwalk needs from the running kernel, found at load time: kallsyms_lookup_name through a
 * kprobe (it is not exported), then the walkers, text and entry-text bounds, per-CPU stacks,
 * trampolines, the KASLR offset and the running kernel's build-id (from its ELF notes).
 */
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/elf.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/memory.h>
#include "ow.h"

#ifndef NT_GNU_BUILD_ID
#define NT_GNU_BUILD_ID 3	/* include/uapi/linux/elf.h has no name for it */
#endif

struct ow_kernel ow_k;

static unsigned long find_lookup(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	unsigned long addr;

	if (register_kprobe(&kp))
		return 0;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
	return addr;
}

/* NT_GNU_BUILD_ID from the kernel's own notes (__start_notes .. __stop_notes). */
static void find_build_id(void)
{
	unsigned long p = ow_k.lookup("__start_notes"), end = ow_k.lookup("__stop_notes");

	while (p && p + sizeof(Elf64_Nhdr) <= end) {
		const Elf64_Nhdr *n = (const void *)p;
		unsigned long name = p + sizeof(*n);
		unsigned long desc = name + ALIGN(n->n_namesz, 4);

		if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
		    !memcmp((void *)name, "GNU", 4) && n->n_descsz <= sizeof(ow_k.build_id) &&
		    desc + n->n_descsz <= end) {
			memcpy(ow_k.build_id, (void *)desc, n->n_descsz);
			ow_k.build_id_len = n->n_descsz;
			return;
		}
		p = desc + ALIGN(n->n_descsz, 4);
	}
}

/*
 * ftrace_caller (entry-ftrace.S) calls the tracer callback with its one `blr`: the walk crosses
 * the trampoline's frame at that call's return address. 0 (not crossed) if it is not found.
 */
static unsigned long find_ftrace_callsite(void)
{
	unsigned long start = ow_k.lookup("ftrace_caller"), size, offset, pc;
	u32 insn;

	if (!start || !ow_k.size_offset(start, &size, &offset) || offset)
		return 0;
	for (pc = start; pc + 4 <= start + size; pc += 4) {
		if (copy_from_kernel_nofault(&insn, (void *)pc, 4))
			return 0;
		if ((insn & 0xfffffc1f) == 0xd63f0000)	/* blr xN */
			return pc + 4;
	}
	return 0;
}

#define NEED(field, name)							\
	do {									\
		ow_k.field = (typeof(ow_k.field))ow_k.lookup(name);		\
		if (!ow_k.field) {						\
			pr_err("orcwalk: symbol %s not found\n", name);		\
			return -ENOENT;						\
		}								\
	} while (0)

int ow_kernel_init(void)
{
	unsigned long text;

	ow_k.lookup = (void *)find_lookup();
	if (!ow_k.lookup) {
		pr_err("orcwalk: kallsyms_lookup_name not found through a kprobe\n");
		return -ENOENT;
	}
	NEED(save_reliable, "stack_trace_save_tsk_reliable");
	NEED(call_func, "task_call_func");
	NEED(put_stack, "put_task_stack");
	NEED(save_regs, "stack_trace_save_regs");
	NEED(size_offset, "kallsyms_lookup_size_offset");
	NEED(graph_ret_addr, "ftrace_graph_ret_addr");
	NEED(kretprobe_ret_addr, "kretprobe_find_ret_addr");
	NEED(text_start, "_stext");
	NEED(text_end, "_etext");
	NEED(entry_start, "__entry_text_start");
	NEED(entry_end, "__entry_text_end");
	NEED(fgraph_return, "return_to_handler");
	NEED(kretprobe_trampoline, "__kretprobe_trampoline");
	NEED(irq_stack_ptr, "irq_stack_ptr");
	NEED(overflow_stack, "overflow_stack");
	ow_k.ftrace_callsite = find_ftrace_callsite();
	text = ow_k.lookup("_text");
	if (!text)
		return -ENOENT;
	/* vmlinux is linked at KIMAGE_VADDR (kaslr_offset() reads _text, which is not exported). */
	ow_k.slide = text - KIMAGE_VADDR;
	find_build_id();
	if (!ow_k.build_id_len) {
		pr_err("orcwalk: the running kernel has no GNU build-id note\n");
		return -ENOENT;
	}
	return 0;
}

static bool within(unsigned long long addr, unsigned long long low, unsigned long long high)
{
	return addr >= low && addr < high && high - addr >= 8;
}

/*
 * The walk's stacks (pinned for the walk) and kernel text are always mapped: read them directly,
 * as the kernel's own unwinder reads stacks. Anything else goes through the non-faulting copy.
 */
bool ow_read(void *ctx, unsigned long long addr, unsigned long long *out)
{
	const struct ow_walk *w = ctx;
	unsigned int i;

	if (!(addr & 7)) {
		bool mapped = within(addr, ow_k.text_start, ow_k.text_end);

		for (i = 0; w && !mapped && i < w->nr_stacks; i++)
			mapped = within(addr, w->stacks[i].low, w->stacks[i].high);
		if (mapped) {
			*out = READ_ONCE(*(const unsigned long long *)(unsigned long)addr);
			return true;
		}
	}
	return !copy_from_kernel_nofault(out, (const void *)(unsigned long)addr, sizeof(*out));
}

/* The symbol holding pc, as kallsyms sizes it (up to the next symbol). */
bool ow_function(void *ctx, unsigned long long pc, unsigned long long *start, unsigned long long *end)
{
	unsigned long size, offset;

	if (!ow_k.size_offset(pc, &size, &offset) || !size)
		return false;
	*start = pc - offset;
	*end = *start + size;
	return true;
}

/* As kunwind_recover_return_address(): keyed by the caller's frame pointer. */
bool ow_recover(void *ctx, unsigned int which, unsigned long long fp, unsigned long long pc,
		unsigned long long *out)
{
	struct ow_walk *w = ctx;
	unsigned long orig;

	if (!w)
		return false;
	if (which == 0) {
		if (!w->task->ret_stack)
			return false;
		orig = ow_k.graph_ret_addr(w->task, &w->graph_idx, pc, (unsigned long *)(unsigned long)fp);
		if (orig == pc)
			return false;
	} else {
		orig = ow_k.kretprobe_ret_addr(w->task, (void *)(unsigned long)fp, &w->kr_cur);
		if (!orig)
			return false;
	}
	*out = orig;
	return true;
}
