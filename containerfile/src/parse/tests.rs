//! Table tests of the parser against BuildKit's rules
//! (frontend/dockerfile/parser, instructions/parse.go).

use super::*;

fn ok(text: &str) -> Containerfile {
    match parse(text, "Containerfile") {
        Ok(c) => c,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, "Containerfile") {
        Ok(c) => panic!("{text:?} parsed: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// The op of the only instruction after `FROM scratch`.
fn op(line: &str) -> Op {
    let cf = ok(&format!("FROM scratch\n{line}\n"));
    assert_eq!(cf.stages[0].instructions.len(), 1, "{line:?}");
    cf.stages[0].instructions[0].op.clone()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(cmd: Cmd) -> Op {
    Op::Run {
        mounts: vec![],
        network: None,
        security: None,
        cmd,
        heredocs: vec![],
    }
}

fn sh(t: &str) -> Cmd {
    Cmd::Shell(t.to_string())
}

fn copy(sources: &[&str], dest: &str) -> Copy {
    Copy {
        sources: s(sources),
        dest: dest.into(),
        ..Copy::default()
    }
}

fn doc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
    }
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

#[test]
fn instructions_table() {
    let cases: Vec<(&str, Op)> = vec![
        // Shell and exec forms.
        ("RUN echo hi", run(sh("echo hi"))),
        ("run  echo hi  ", run(sh("echo hi"))),
        ("RUN [\"echo\", \"hi\"]", run(Cmd::Exec(s(&["echo", "hi"])))),
        ("RUN   [ \"a\" ,\"b\" ]  ", run(Cmd::Exec(s(&["a", "b"])))),
        // Not valid JSON: shell form, as BuildKit (single quotes, trailing comma).
        ("RUN ['echo', 'hi']", run(sh("['echo', 'hi']"))),
        ("CMD [\"a\",]", Op::Cmd(sh("[\"a\",]"))),
        ("CMD [\"a\"] x", Op::Cmd(sh("[\"a\"] x"))),
        ("ENTRYPOINT []", Op::Entrypoint(Cmd::Exec(vec![]))),
        ("ENTRYPOINT [\"/bin/tini\", \"--\"]", Op::Entrypoint(Cmd::Exec(s(&["/bin/tini", "--"])))),
        ("CMD echo $HOME", Op::Cmd(sh("echo $HOME"))),
        ("SHELL [\"/bin/bash\", \"-eu\", \"-c\"]", Op::Shell(s(&["/bin/bash", "-eu", "-c"]))),
        // RUN flags: --mount repeats, values kept raw.
        (
            "RUN --mount=type=cache,target=/root/.cache --mount=type=bind,source=.,target=/src --network=none --security=insecure make",
            Op::Run {
                mounts: s(&["type=cache,target=/root/.cache", "type=bind,source=.,target=/src"]),
                network: Some("none".into()),
                security: Some("insecure".into()),
                cmd: sh("make"),
                heredocs: vec![],
            },
        ),
        // Flag values lose their quotes; a lone `--` ends the flags.
        (
            "RUN --network=\"host\" -- --not-a-flag",
            Op::Run {
                mounts: vec![],
                network: Some("host".into()),
                security: None,
                cmd: sh("--not-a-flag"),
                heredocs: vec![],
            },
        ),
        // A single dash is not a flag.
        ("RUN -x", run(sh("-x"))),
        // COPY / ADD.
        ("COPY a b /dst/", Op::Copy(copy(&["a", "b"], "/dst/"))),
        ("COPY [\"a b\", \"/d/\"]", Op::Copy(copy(&["a b"], "/d/"))),
        (
            "COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.md --exclude=x /a /b",
            Op::Copy(Copy {
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: Some("0755".into()),
                link: true,
                parents: true,
                exclude: s(&["*.md", "x"]),
                ..copy(&["/a"], "/b")
            }),
        ),
        ("COPY --link=false a b", Op::Copy(copy(&["a"], "b"))),
        ("COPY --link=TRUE a b", Op::Copy(Copy { link: true, ..copy(&["a"], "b") })),
        (
            "ADD --checksum=sha256:abc --keep-git-dir --chown=u https://x/y.tar /",
            Op::Add(Copy {
                checksum: Some("sha256:abc".into()),
                keep_git_dir: true,
                chown: Some("u".into()),
                ..copy(&["https://x/y.tar"], "/")
            }),
        ),
        // Words are kept raw: expansion comes later.
        ("COPY $SRC ${DEST}", Op::Copy(copy(&["$SRC"], "${DEST}"))),
        // ENV / LABEL.
        ("ENV a=b", Op::Env(kv(&[("a", "b")]))),
        ("ENV a=b c=\"d e\" f='g h' i=j\\ k", Op::Env(kv(&[("a", "b"), ("c", "\"d e\""), ("f", "'g h'"), ("i", "j\\ k")]))),
        // Legacy form: one pair, the value is the rest of the line.
        ("ENV key value with  spaces", Op::Env(kv(&[("key", "value with  spaces")]))),
        ("ENV a= b=", Op::Env(kv(&[("a", ""), ("b", "")]))),
        ("ENV a=x=y", Op::Env(kv(&[("a", "x=y")]))),
        ("LABEL \"com.example.v\"=\"1 2\" b=c", Op::Label(kv(&[("\"com.example.v\"", "\"1 2\""), ("b", "c")]))),
        ("LABEL maintainer me@x", Op::Label(kv(&[("maintainer", "me@x")]))),
        // ARG.
        ("ARG a", Op::Arg(vec![("a".into(), None)])),
        ("ARG a=1 b c=", Op::Arg(vec![("a".into(), Some("1".into())), ("b".into(), None), ("c".into(), Some(String::new()))])),
        // Single-string instructions take the rest of the line.
        ("WORKDIR /a b", Op::Workdir("/a b".into())),
        ("USER 1000:1000", Op::User("1000:1000".into())),
        ("STOPSIGNAL SIGKILL", Op::StopSignal("SIGKILL".into())),
        ("MAINTAINER Jo Doe <jo@x>", Op::Maintainer("Jo Doe <jo@x>".into())),
        ("EXPOSE 80/tcp  443 $P", Op::Expose(s(&["80/tcp", "443", "$P"]))),
        ("VOLUME /a /b", Op::Volume(s(&["/a", "/b"]))),
        ("VOLUME [\"/a\", \" /b \"]", Op::Volume(s(&["/a", "/b"]))),
        // HEALTHCHECK.
        ("HEALTHCHECK NONE", Op::Healthcheck(None)),
        ("healthcheck none", Op::Healthcheck(None)),
        (
            "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 CMD curl -f http://x/ || exit 1",
            Op::Healthcheck(Some(Health {
                test: s(&["CMD-SHELL", "curl -f http://x/ || exit 1"]),
                interval: secs(30),
                timeout: secs(90),
                start_period: Some(Duration::from_millis(500)),
                start_interval: secs(2),
                retries: Some(3),
            })),
        ),
        (
            "HEALTHCHECK cmd [\"/bin/check\", \"-q\"]",
            Op::Healthcheck(Some(Health {
                test: s(&["CMD", "/bin/check", "-q"]),
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: None,
            })),
        ),
        // `--interval=0s` is the default (BuildKit: 0 means unset).
        (
            "HEALTHCHECK --interval=0s --retries=0 CMD true",
            Op::Healthcheck(Some(Health {
                test: s(&["CMD-SHELL", "true"]),
                interval: None,
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(0),
            })),
        ),
        // ONBUILD keeps the trigger text.
        ("ONBUILD RUN make  install", Op::Onbuild("RUN make  install".into())),
        ("ONBUILD copy . /app", Op::Onbuild("copy . /app".into())),
    ];
    for (line, want) in cases {
        assert_eq!(op(line), want, "{line:?}");
    }
}

#[test]
fn errors_table() {
    let cases: &[(&str, &str)] = &[
        // Unknown instructions, with a suggestion within edit distance 2.
        ("FROM a\nFORM b\n", "Containerfile:2:1: unknown instruction: FORM (did you mean FROM?)"),
        ("FROM a\n  rn x\n", "Containerfile:2:3: unknown instruction: rn (did you mean RUN?)"),
        ("FROM a\nCOPPY a b\n", "Containerfile:2:1: unknown instruction: COPPY (did you mean COPY?)"),
        ("FROM a\nFOOBAR x\n", "Containerfile:2:1: unknown instruction: FOOBAR"),
        // Only ARG before the first FROM.
        ("ARG a\nRUN x\nFROM a\n", "Containerfile:2:1: RUN before the first FROM: only ARG may come before FROM (no build stage in current context)"),
        ("# just a comment\n\n", "Containerfile:2:1: no FROM instruction: a Containerfile starts its first stage with FROM image"),
        ("ARG a\n", "Containerfile:1:1: no FROM instruction: a Containerfile starts its first stage with FROM image"),
        ("", "Containerfile:1:1: no FROM instruction: a Containerfile starts its first stage with FROM image"),
        // FROM.
        ("FROM\n", "Containerfile:1:5: FROM requires either one or three arguments: FROM image [AS name]"),
        ("FROM a b\n", "Containerfile:1:8: FROM requires either one or three arguments: FROM image [AS name]"),
        ("FROM a AS b c\n", "Containerfile:1:8: FROM requires either one or three arguments: FROM image [AS name]"),
        ("FROM a IS b\n", "Containerfile:1:8: FROM requires either one or three arguments: FROM image [AS name]; expected AS, found \"IS\""),
        ("FROM a AS 1st\n", "Containerfile:1:11: invalid name for build stage: \"1st\", name can't start with a number or contain symbols (use [a-z][a-z0-9-_.]*)"),
        ("FROM a AS b$c\n", "Containerfile:1:11: invalid name for build stage: \"b$c\", name can't start with a number or contain symbols (use [a-z][a-z0-9-_.]*)"),
        ("FROM a AS x\nFROM b as X\n", "Containerfile:2:11: duplicate stage name \"x\": give each stage its own name"),
        ("FROM --plat=x a\n", "Containerfile:1:6: unknown flag --plat for FROM (it takes --platform)"),
        // Flags.
        ("FROM a\nCOPY --foo=1 a b\n", "Containerfile:2:6: unknown flag --foo for COPY (it takes --from, --chown, --chmod, --link, --parents, --exclude)"),
        // ADD has no --from in BuildKit.
        ("FROM a\nADD --from=x a b\n", "Containerfile:2:5: unknown flag --from for ADD (it takes --chown, --chmod, --link, --keep-git-dir, --checksum, --exclude)"),
        ("FROM a\nENV --x=1 a=b\n", "Containerfile:2:5: unknown flag --x for ENV (it takes no flags)"),
        ("FROM a\nCOPY --from a b\n", "Containerfile:2:6: missing a value on flag --from: write --from=VALUE"),
        ("FROM a\nCOPY --from=a --from=b a b\n", "Containerfile:2:15: duplicate flag specified: --from"),
        ("FROM a\nCOPY --link=yes a b\n", "Containerfile:2:6: expecting boolean value for flag --link, not: yes"),
        ("FROM a\nRUN --mount\n", "Containerfile:2:5: missing a value on flag --mount: write --mount=VALUE"),
        // Missing arguments.
        ("FROM a\nRUN\n", "Containerfile:2:4: RUN requires at least one argument"),
        ("FROM a\nRUN --network=none\n", "Containerfile:2:19: RUN requires at least one argument"),
        ("FROM a\nCMD\n", "Containerfile:2:4: CMD requires at least one argument"),
        ("FROM a\nWORKDIR\n", "Containerfile:2:8: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER   \n", "Containerfile:2:8: USER requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "Containerfile:2:7: EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME []\n", "Containerfile:2:8: VOLUME requires at least one argument"),
        ("FROM a\nVOLUME [\"\"]\n", "Containerfile:2:8: VOLUME specified can not be an empty string"),
        ("FROM a\nARG\n", "Containerfile:2:4: ARG requires at least one argument"),
        ("FROM a\nARG =x\n", "Containerfile:2:5: ARG names can not be blank"),
        ("FROM a\nCOPY a\n", "Containerfile:2:6: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM a\nADD [\"a\"]\n", "Containerfile:2:5: ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
        // ENV / LABEL.
        ("FROM a\nENV\n", "Containerfile:2:4: ENV requires at least one argument"),
        ("FROM a\nENV a\n", "Containerfile:2:5: ENV must have two arguments: write ENV a=value"),
        ("FROM a\nLABEL a\n", "Containerfile:2:7: LABEL must have two arguments: write LABEL a=value"),
        ("FROM a\nENV a=b c\n", "Containerfile:2:9: Syntax error - can't find = in \"c\". Must be of the form: name=value"),
        ("FROM a\nLABEL =b\n", "Containerfile:2:7: LABEL names can not be blank"),
        // JSON arrays must hold strings only.
        ("FROM a\nCMD [\"a\", 1]\n", "Containerfile:2:5: when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM a\nSHELL /bin/sh -c\n", "Containerfile:2:7: SHELL requires the arguments to be in JSON form: write SHELL [\"/bin/sh\", \"-c\"]"),
        ("FROM a\nSHELL []\n", "Containerfile:2:7: SHELL requires at least one argument"),
        // HEALTHCHECK.
        ("FROM a\nHEALTHCHECK\n", "Containerfile:2:12: HEALTHCHECK requires at least one argument: NONE or CMD command"),
        ("FROM a\nHEALTHCHECK NONE x\n", "Containerfile:2:18: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK RUN x\n", "Containerfile:2:13: Unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
        ("FROM a\nHEALTHCHECK CMD\n", "Containerfile:2:16: Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK --interval=10 CMD x\n", "Containerfile:2:13: --interval=\"10\" is not a duration: write e.g. 30s, 1m30s or 500ms"),
        ("FROM a\nHEALTHCHECK --timeout=10us CMD x\n", "Containerfile:2:13: Interval \"timeout\" cannot be less than 1ms (got 10us)"),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "Containerfile:2:13: --retries cannot be negative (-1)"),
        ("FROM a\nHEALTHCHECK --retries=x CMD x\n", "Containerfile:2:13: --retries=\"x\" is not a whole number: write --retries=3"),
        ("FROM a\nHEALTHCHECK --bogus=1 CMD x\n", "Containerfile:2:13: unknown flag --bogus for HEALTHCHECK (it takes --interval, --timeout, --start-period, --start-interval, --retries)"),
        // ONBUILD.
        ("FROM a\nONBUILD\n", "Containerfile:2:8: ONBUILD requires at least one argument: the instruction to run later"),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "Containerfile:2:9: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD from b\n", "Containerfile:2:9: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD MAINTAINER me\n", "Containerfile:2:9: MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD RUNN x\n", "Containerfile:2:9: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\nONBUILD COPY a\n", "Containerfile:2:14: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        // Directives.
        ("# escape=x\nFROM a\n", "Containerfile:1:10: invalid escape token 'x' does not match ` or \\"),
        ("# escape=`\n# Escape=\\\nFROM a\n", "Containerfile:2:1: only one escape parser directive can be used: remove this line"),
        ("# syntax=a\n#syntax=b\nFROM a\n", "Containerfile:2:1: only one syntax parser directive can be used: remove this line"),
        // Heredocs.
        ("FROM a\nRUN <<EOF\necho hi\n", "Containerfile:2:5: unterminated heredoc <<EOF started on line 2: end it with a line holding only EOF"),
        ("FROM a\nRUN <<A <<B\na\nA\nb\n", "Containerfile:2:9: unterminated heredoc <<B started on line 2: end it with a line holding only B"),
        ("FROM a\nCOPY a <<EOF\nx\nEOF\n", "Containerfile:2:8: COPY cannot accept a heredoc as a destination"),
        // BuildKit checks the destination in JSON form too.
        (
            "FROM a\nCOPY [\"a\", \"<<EOF\"]\n",
            "Containerfile:2:6: COPY cannot accept a heredoc as a destination",
        ),
        // The position of an error on a continuation line is that line's.
        ("FROM a\nCOPY \\\n  --bad=1 a b\n", "Containerfile:3:3: unknown flag --bad for COPY (it takes --from, --chown, --chmod, --link, --parents, --exclude)"),
        ("FROM a\nENV a=1 \\\n # comment\n\n    b\n", "Containerfile:5:5: Syntax error - can't find = in \"b\". Must be of the form: name=value"),
    ];
    let mut failed = Vec::new();
    for (text, want) in cases {
        let got = err(text);
        if got != *want {
            failed.push(format!("{text:?}\n  want {want}\n  got  {got}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

#[test]
fn directives() {
    // Case-insensitive keys, blanks around `=`, the escape changes continuations.
    let cf = ok("# SYNTAX = docker/dockerfile:1\n# Escape = `\nFROM a\nRUN echo a `\n  b\n");
    assert_eq!(cf.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(cf.escape, '`');
    assert_eq!(cf.stages[0].instructions[0].op, run(sh("echo a   b")));
    // With escape=` a backslash at the end is an ordinary character (Windows paths).
    let cf = ok("# escape=`\nFROM a\nWORKDIR C:\\\nRUN dir\n");
    assert_eq!(cf.stages[0].instructions[0].op, Op::Workdir("C:\\".into()));
    assert_eq!(cf.stages[0].instructions[1].op, run(sh("dir")));
    // After a comment, a blank line or an instruction, `# escape=` is a comment.
    for text in [
        "# hello\n# escape=`\nFROM a\nRUN a \\\n b\n",
        "\n# escape=`\nFROM a\nRUN a \\\n b\n",
        "FROM a\n# escape=`\nRUN a \\\n b\n",
        // An unknown directive ends the directives too.
        "# foo=bar\n# escape=`\nFROM a\nRUN a \\\n b\n",
    ] {
        let cf = ok(text);
        assert_eq!(cf.escape, '\\', "{text:?}");
        assert_eq!(cf.stages[0].instructions[0].op, run(sh("a  b")), "{text:?}");
    }
    // `check` is a known directive (recorded by nobody here, but it does not end them).
    assert_eq!(ok("# check=skip=all\n# escape=`\nFROM a\n").escape, '`');
}

#[test]
fn continuations_and_comments() {
    let cf = ok("FROM a\n  RUN echo a \\  \n# inside\n\n   && echo b \\\n\t&& echo c\nrun x\n");
    let ins = &cf.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(ins[0].op, run(sh("echo a    && echo b \t&& echo c")));
    assert_eq!(ins[0].line, 2);
    assert_eq!(ins[0].text, "RUN echo a    && echo b \t&& echo c");
    assert_eq!(ins[1].line, 7);
    // A doubled escape at the end is not a continuation.
    let cf = ok("FROM a\nRUN echo \\\\\nRUN b\n");
    assert_eq!(cf.stages[0].instructions.len(), 2);
    assert_eq!(cf.stages[0].instructions[0].op, run(sh("echo \\\\")));
    // A continuation at the end of the file just ends the instruction.
    let cf = ok("FROM a\nRUN a \\");
    assert_eq!(cf.stages[0].instructions[0].op, run(sh("a")));
    // Lines of nothing but a continuation are no instruction.
    let cf = ok("FROM a\n\\\n  \\\nRUN x\n\\");
    assert_eq!(cf.stages[0].instructions.len(), 1);
    // CRLF line ends and a byte-order mark.
    let cf = ok("\u{feff}FROM a\r\nRUN a \\\r\n b\r\n");
    assert_eq!(cf.stages[0].instructions[0].op, run(sh("a  b")));
    // A FROM split over lines.
    let cf = ok("FROM \\\n  alpine \\\n  AS Build\n");
    assert_eq!(cf.stages[0].name.as_deref(), Some("build"));
    assert_eq!(cf.stages[0].base, "alpine");
}

#[test]
fn stages_and_global_args() {
    let text = "# comment\nARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM ${BASE}:${V} AS build-1.x\nRUN make\nFROM scratch\nCOPY --from=build-1.x /out /\n";
    let cf = ok(text);
    assert_eq!(cf.args.len(), 2);
    assert_eq!(
        cf.args[0].op,
        Op::Arg(vec![("BASE".into(), Some("alpine".into()))])
    );
    assert_eq!(cf.args[1].line, 3);
    assert_eq!(cf.stages.len(), 2);
    let s0 = &cf.stages[0];
    assert_eq!(
        (
            s0.index,
            s0.base.as_str(),
            s0.name.as_deref(),
            s0.platform.as_deref(),
            s0.line
        ),
        (
            0,
            "${BASE}:${V}",
            Some("build-1.x"),
            Some("$BUILDPLATFORM"),
            4
        )
    );
    assert_eq!(
        s0.text,
        "FROM --platform=$BUILDPLATFORM ${BASE}:${V} AS build-1.x"
    );
    assert_eq!(s0.instructions.len(), 1);
    let s1 = &cf.stages[1];
    assert_eq!((s1.index, s1.name.as_deref(), s1.line), (1, None, 6));
    assert_eq!(
        s1.instructions[0].op,
        Op::Copy(Copy {
            from: Some("build-1.x".into()),
            ..copy(&["/out"], "/")
        })
    );
}

#[test]
fn heredocs() {
    // One heredoc: content raw, each line with its end; no continuation inside.
    let cf = ok("FROM a\nRUN <<EOF\necho $X \\\n  two\nEOF\nRUN after\n");
    let ins = &cf.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(
        ins[0].op,
        Op::Run {
            mounts: vec![],
            network: None,
            security: None,
            cmd: sh("<<EOF"),
            heredocs: vec![doc("EOF", "echo $X \\\n  two\n", true, false)],
        }
    );
    assert_eq!(ins[0].text, "RUN <<EOF");
    assert_eq!(ins[1].line, 6);
    // Several on one line, a program reading one, quoted and chomped ones.
    let cf = ok("FROM a\nRUN python3 <<'PY' && cat <<-\"T\" 2<<E\nprint(1)\nPY\n\t\tx\n\tT\nE\n");
    let Op::Run { heredocs, cmd, .. } = &cf.stages[0].instructions[0].op else {
        panic!()
    };
    assert_eq!(cmd, &sh("python3 <<'PY' && cat <<-\"T\" 2<<E"));
    assert_eq!(
        heredocs,
        &vec![
            doc("PY", "print(1)\n", false, false),
            doc("T", "x\n", false, true),
            doc("E", "", true, false)
        ]
    );
    // A terminator needs the whole line; with <<- leading tabs (only) are ignored.
    let cf = ok("FROM a\nRUN <<EOF\n EOF\nEOF \nEOF\n");
    let Op::Run { heredocs, .. } = &cf.stages[0].instructions[0].op else {
        panic!()
    };
    assert_eq!(heredocs[0].content, " EOF\nEOF \n");
    // COPY with heredoc sources next to files; the content is the source.
    let cf = ok("FROM a\nCOPY <<A f <<\"B\" /dst/\nhello $X\nA\nraw $X\nB\n");
    assert_eq!(
        cf.stages[0].instructions[0].op,
        Op::Copy(Copy {
            heredocs: vec![
                doc("A", "hello $X\n", true, false),
                doc("B", "raw $X\n", false, false)
            ],
            ..copy(&["f"], "/dst/")
        })
    );
    // A heredoc alone satisfies COPY's two arguments.
    let cf = ok("FROM a\nCOPY <<EOF /etc/motd\nhi\nEOF\n");
    let Op::Copy(c) = &cf.stages[0].instructions[0].op else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.heredocs, vec![doc("EOF", "hi\n", true, false)]);
    // Not for other instructions, nor for exec form, nor quoted `<<`.
    let cf = ok("FROM a\nENV a=<<EOF\nRUN [\"cat\", \"<<EOF\"]\nRUN echo '<<EOF'\n");
    assert_eq!(cf.stages[0].instructions.len(), 3);
    // An unmatched quote on the line hides the heredocs (BuildKit ignores the
    // lexer's error there): `EOF` is then an (unknown) instruction.
    assert!(err("FROM a\nRUN echo \"x <<EOF\nEOF\n").contains("unknown instruction: EOF"));
    // Two bodies of one name: COPY takes the last.
    let cf = ok("FROM a\nCOPY <<E <<E /d\n1\nE\n2\nE\n");
    let Op::Copy(c) = &cf.stages[0].instructions[0].op else {
        panic!()
    };
    assert_eq!(
        c.heredocs,
        vec![doc("E", "2\n", true, false), doc("E", "2\n", true, false)]
    );
    // ONBUILD of a RUN with a heredoc records the body in its text (as BuildKit).
    let cf = ok("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    assert_eq!(
        cf.stages[0].instructions[0].op,
        Op::Onbuild("RUN <<EOF\necho hi\nEOF".into())
    );
    // The continuation escape at the end of a heredoc line joins nothing.
    let cf = ok("FROM a\nRUN <<EOF bash -e \\\n -x\nset -e\nEOF\n");
    let Op::Run { heredocs, cmd, .. } = &cf.stages[0].instructions[0].op else {
        panic!()
    };
    assert_eq!(cmd, &sh("<<EOF bash -e  -x"));
    assert_eq!(heredocs, &vec![doc("EOF", "set -e\n", true, false)]);
}

#[test]
fn positions() {
    let e = parse("FROM a\n\tCOPY --x=1 a b\n", "dir/Dockerfile").unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("dir/Dockerfile", 2, 7)
    );
    // Columns count characters, not bytes.
    let e = parse("FROM a\nENV é=1 ü\n", "f").unwrap_err();
    assert_eq!((e.line, e.column), (2, 9));
}

#[test]
fn go_durations() {
    use super::words::go_duration;
    let cases: &[(&str, Option<i128>)] = &[
        ("0", Some(0)),
        ("30s", Some(30_000_000_000)),
        ("1m30s", Some(90_000_000_000)),
        ("1.5h", Some(5_400_000_000_000)),
        (".5s", Some(500_000_000)),
        ("500ms", Some(500_000_000)),
        ("10us", Some(10_000)),
        ("10µs", Some(10_000)),
        ("1ns", Some(1)),
        ("-1s", Some(-1_000_000_000)),
        ("+2m", Some(120_000_000_000)),
        ("", None),
        ("10", None),
        ("s", None),
        (".s", None),
        ("1d", None),
        ("1s2", None),
        ("9999999999999999999h", None),
    ];
    for (s, want) in cases {
        assert_eq!(go_duration(s), *want, "{s:?}");
    }
}

#[test]
fn hostile_inputs_do_not_panic() {
    let many = "${a:-".repeat(10_000);
    let inputs = [
        "\\",
        "`",
        "#",
        "# escape=",
        "FROM",
        "FROM a\nRUN <<",
        "FROM a\nRUN <<\"",
        "FROM a\nCOPY <<'",
        "FROM a\nRUN --",
        "FROM a\nRUN --=",
        "FROM a\nRUN \"--a",
        "FROM a\nCMD [[[[[[[[",
        "FROM é\u{0}\nRUN \\\u{0}",
        "FROM a\nONBUILD",
        "FROM a\nONBUILD RUN <<E\n",
        "FROM a\nHEALTHCHECK --interval=1.h CMD x",
        "FROM a\nCOPY <<-  \"x",
        "\r\r\r",
        "FROM a\nEXPOSE \u{b}\u{c}",
    ];
    for i in inputs {
        let _ = parse(i, "f");
    }
    let deep = format!("FROM a\nCMD {}\n", "[".repeat(100_000));
    let _ = parse(&deep, "f");
    let _ = parse(&format!("FROM a\nRUN <<{many}\n"), "f");
}
