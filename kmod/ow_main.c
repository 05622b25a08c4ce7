// SPDX-License-Identifier: GPL-2.0
/*
 * orcwalk.ko: loads the vmlinux ORC table made by `orc-format build` from the matching -dbg
 * vmlinux (request_firmware, /lib/firmware/<table>), refuses any table that is not this kernel's,
 * and offers the comparison rounds through debugfs:
 *   /sys/kernel/debug/orcwalk/round   each read runs one round and prints its counts
 *   /sys/kernel/debug/orcwalk/total   the counts of every round so far (a write resets them)
 */
#include <linux/module.h>
#include <linux/debugfs.h>
#include <linux/firmware.h>
#include <linux/seq_file.h>
#include <linux/mutex.h>
#include <linux/kthread.h>
#include <linux/delay.h>
#include <linux/sched.h>
#include <asm/ptrace.h>
#include <asm/ftrace.h>
#include "ow.h"

static char *table = "orcwalk/vmlinux.orc";
static bool wakers = true;
module_param(wakers, bool, 0444);
MODULE_PARM_DESC(wakers, "one SCHED_FIFO thread per CPU waking every millisecond");
module_param(table, charp, 0444);
MODULE_PARM_DESC(table, "ORC table file, looked up by request_firmware");

struct orcwalk_context ow_base;
static const struct firmware *fw;
static struct dentry *dir;
static struct task_struct *waker[NR_CPUS];
static DEFINE_MUTEX(round_lock);

static int load_table(void)
{
	struct orcwalk_table_file tf;
	int ret;

	ret = request_firmware_direct(&fw, table, NULL);
	if (ret) {
		pr_err("orcwalk: cannot read table %s (%d): not loading\n", table, ret);
		return ret;
	}
	ret = orcwalk_parse_table_file(fw->data, fw->size, ow_k.slide, &tf);
	if (ret) {
		pr_err("orcwalk: table %s refused: %s (%d): not loading\n", table,
		       orcwalk_table_error_name(tf.error), ret);
		goto bad;
	}
	if (tf.image_id_kind != 1 || tf.image_id_len != ow_k.build_id_len ||
	    memcmp(tf.image_id, ow_k.build_id, tf.image_id_len)) {
		pr_err("orcwalk: table %s is for build-id %*phN (id kind %u), this kernel's is %*phN: not loading\n",
		       table, tf.image_id_len, tf.image_id, tf.image_id_kind, ow_k.build_id_len,
		       ow_k.build_id);
		ret = -EINVAL;
		goto bad;
	}
	if (orcwalk_validate_table(&tf.table)) {
		pr_err("orcwalk: table %s does not validate: not loading\n", table);
		ret = -EINVAL;
		goto bad;
	}
	ow_base.table = tf.table;
	ow_base.flags = tf.proven ? ORCWALK_FLAG_ROWS_PROVEN : 0;
	pr_info("orcwalk: table %s: %u entries, rows %s, build-id %*phN, KASLR offset %#lx\n", table,
		tf.table.num_entries, tf.proven ? "proven" : "unproven", tf.image_id_len, tf.image_id,
		ow_k.slide);
	return 0;
bad:
	release_firmware(fw);
	fw = NULL;
	return ret;
}

static void fill_base(void)
{
	ow_base.layout = (struct orcwalk_layout) {
		.pt_regs_size = sizeof(struct pt_regs),
		.x29 = offsetof(struct pt_regs, regs[29]),
		.x30 = offsetof(struct pt_regs, regs[30]),
		.sp = offsetof(struct pt_regs, sp),
		.pc = offsetof(struct pt_regs, pc),
		.pstate = offsetof(struct pt_regs, pstate),
		.stackframe = offsetof(struct pt_regs, stackframe),
		.meta_records = 1,
		.va_bits = vabits_actual,
	};
	ow_base.text_start = ow_k.text_start;
	ow_base.text_end = ow_k.text_end;
	ow_base.entry_start = ow_k.entry_start;
	ow_base.entry_end = ow_k.entry_end;
	ow_base.fgraph_return = ow_k.fgraph_return;
	ow_base.kretprobe_trampoline = ow_k.kretprobe_trampoline;
	ow_base.max_frames = OW_MAX_FRAMES;
	ow_base.read = ow_read;
	ow_base.function = ow_function;
	ow_base.recover = ow_recover;
	/* entry-ftrace.S: ftrace_regs, then two frame records, FREGS_SIZE + 32 bytes in all. */
	ow_base.ftrace = (struct orcwalk_ftrace) {
		.callsite = ow_k.ftrace_callsite,
		.size = sizeof(struct __arch_ftrace_regs) + 32,
		.record = sizeof(struct __arch_ftrace_regs),
		.fp = offsetof(struct __arch_ftrace_regs, fp),
		.lr = offsetof(struct __arch_ftrace_regs, lr),
		.sp = offsetof(struct __arch_ftrace_regs, sp),
	};
}

/*
 * An RT thread's wakeup preempts the running task at once (PREEMPT_LAZY defers only fair-class
 * preemption to the tick), wherever it is in the kernel: the tasks livepatch finds stopped by
 * an interrupt in kernel code, which mainline's reliable unwinder refuses.
 */
static int waker_fn(void *unused)
{
	while (!kthread_should_stop())
		usleep_range(1000, 1500);
	return 0;
}

static void start_wakers(void)
{
	int cpu;

	for_each_online_cpu(cpu) {
		struct task_struct *t = kthread_create_on_cpu(waker_fn, NULL, cpu, "ow_waker/%u");

		if (IS_ERR(t))
			continue;
		sched_set_fifo(t);
		wake_up_process(t);
		waker[cpu] = t;
	}
}

static void stop_wakers(void)
{
	int cpu;

	for (cpu = 0; cpu < NR_CPUS; cpu++)
		if (waker[cpu])
			kthread_stop(waker[cpu]);
}

bool ow_is_waker(const struct task_struct *p)
{
	int cpu;

	for (cpu = 0; cpu < NR_CPUS; cpu++)
		if (waker[cpu] == p)
			return true;
	return false;
}

static int round_show(struct seq_file *m, void *v)
{
	int ret;

	mutex_lock(&round_lock);
	ret = ow_round(m);
	mutex_unlock(&round_lock);
	return ret;
}
DEFINE_SHOW_ATTRIBUTE(round);

static int total_show(struct seq_file *m, void *v)
{
	mutex_lock(&round_lock);
	ow_total(m);
	mutex_unlock(&round_lock);
	return 0;
}
static int total_open(struct inode *inode, struct file *file)
{
	return single_open(file, total_show, inode->i_private);
}

/* Any write starts the totals afresh (a new phase of the run). */
static ssize_t total_write(struct file *file, const char __user *buf, size_t len, loff_t *pos)
{
	mutex_lock(&round_lock);
	ow_reset();
	mutex_unlock(&round_lock);
	return len;
}

static const struct file_operations total_fops = {
	.owner = THIS_MODULE,
	.open = total_open,
	.read = seq_read,
	.write = total_write,
	.llseek = seq_lseek,
	.release = single_release,
};

static int __init ow_init(void)
{
	int ret = ow_kernel_init();

	if (ret)
		return ret;
	ret = load_table();
	if (ret)
		return ret;
	fill_base();
	dir = debugfs_create_dir("orcwalk", NULL);
	debugfs_create_file("round", 0400, dir, NULL, &round_fops);
	debugfs_create_file("total", 0600, dir, NULL, &total_fops);
	if (wakers)
		start_wakers();
	return 0;
}

static void __exit ow_exit(void)
{
	debugfs_remove_recursive(dir);
	stop_wakers();
	release_firmware(fw);
	pr_info("orcwalk: unloaded\n");
}

module_init(ow_init);
module_exit(ow_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("orcwalk judged against the kernel's reliable unwinder");
