//! Tests. The `PODMAN` table was produced by running each template through
//! `podman image inspect --format` (podman 4.3.1, Go 1.19) on the image in
//! `IMAGE` and pasting podman's output; see `podman_case` for how podman's
//! own wrapping of the template is reproduced.

use serde_json::{json, Value};

use super::{Shape, Template};

/// `podman image inspect` of an image built with umoci: env HOME and PATH,
/// labels a=b, num=42, "with space"="x y", zeta=last, cmd sh, one layer.
const IMAGE: &str = r#"[{"Id":"70b5f93438d1e955d0ba60587698bb9cb058e9980426c237c7ff466e3b4a6053","Digest":"sha256:d2c5f21230873b7ba3f7fc5207e72b1dceba4b29acdea241d98d653658626762","RepoTags":["localhost/tmp/lay:latest"],"RepoDigests":["localhost/tmp/lay@sha256:d2c5f21230873b7ba3f7fc5207e72b1dceba4b29acdea241d98d653658626762"],"Parent":"","Comment":"","Created":"2026-11-28T11:05:16.775765232Z","Config":{"Env":["HOME=/root","PATH=/usr/bin"],"Cmd":["sh"],"Labels":{"a":"b","num":"42","with space":"x y","zeta":"last"}},"Version":"","Author":"","Architecture":"amd64","Os":"linux","Size":3838,"VirtualSize":3838,"GraphDriver":{"Name":"overlay","Data":{"UpperDir":"/var/lib/containers/storage/overlay/4c81f798ad2f7fadc49a47a1e954c4c32e5616b8dca22a2646279e3b54d2b52f/diff","WorkDir":"/var/lib/containers/storage/overlay/4c81f798ad2f7fadc49a47a1e954c4c32e5616b8dca22a2646279e3b54d2b52f/work"}},"RootFS":{"Type":"layers","Layers":["sha256:4c81f798ad2f7fadc49a47a1e954c4c32e5616b8dca22a2646279e3b54d2b52f"]},"Labels":{"a":"b","num":"42","with space":"x y","zeta":"last"},"Annotations":{},"ManifestType":"application/vnd.oci.image.manifest.v1+json","User":"","History":[{"created":"2026-11-28T11:05:16.786579388Z","created_by":"umoci config","empty_layer":true},{"created":"2026-11-28T11:05:35.548019927Z","created_by":"umoci repack"},{"created":"2026-11-28T11:05:35.567078017Z","created_by":"umoci config","empty_layer":true}],"NamesHistory":["localhost/tmp/lay:latest"]}]"#;

fn image() -> Value {
    serde_json::from_str(IMAGE).expect("fixture is JSON")
}

/// Runs `text` the way podman 4.3 runs an inspect template: wrapped in
/// `{{range .}}…{{end}}`, named "inspect", over the array of results. podman
/// adds a trailing newline and streams partial output before an error;
/// neither is part of the engine, so trailing newlines are ignored and an
/// error is compared alone.
fn podman_case(data: &Value, text: &str) -> Result<String, String> {
    let wrapped = format!("{{{{range .}}}}{text}{{{{end}}}}");
    Template::parse_named("inspect", &wrapped)
        .and_then(|t| t.execute(data))
        .map(|s| s.trim_end_matches('\n').to_string())
        .map_err(|e| e.to_string())
}

/// (template, podman's output or error message).
const PODMAN: &[(&str, Result<&str, &str>)] = &[
    (
        r"{{.Os.Foo}}",
        Err(
            r#"template: inspect:1:16: executing "inspect" at <.Os.Foo>: can't evaluate field Foo in type string"#,
        ),
    ),
    (r"{{.Config.Labels.nope.deeper}}", Ok(r"<no value>")),
    (
        r#"{{index .Config.Labels "a" "b" | printf "%s %s %s %s %s"}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Labels "a" "b">: error calling index: cannot index slice/array with type string"#,
        ),
    ),
    (
        r"{{len .Config.Labels.nope}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <len .Config.Labels.nope>: error calling len: reflect: call of reflect.Value.Type on zero Value"#,
        ),
    ),
    (r"{{eq .Config.Labels.nope 1}}", Ok(r"false")),
    (r"{{and .Config.Labels.nope 1}}", Ok(r"<no value>")),
    (
        r"{{index .Config.Labels.nope 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Labels.nope 1>: error calling index: index of untyped nil"#,
        ),
    ),
    (
        r"{{.Os
}}",
        Ok(r"linux"),
    ),
    (
        r"{{(.Os}}",
        Err(r"template: inspect:1: unclosed left paren"),
    ),
    (
        r"{{.Os)}}",
        Err(r#"template: inspect:1: unexpected ")" in command"#),
    ),
    (
        r#"{{"abc}}"#,
        Err(r"template: inspect:1: unterminated quoted string"),
    ),
    (r#"{{printf "%d" .Os}}"#, Ok(r"%!d(string=linux)")),
    (
        r#"{{printf "%s %v" nil .Config.Labels.nope}}"#,
        Ok(r"%!s(<nil>) <nil>"),
    ),
    (r"{{.Config.Labels.nope}}", Ok(r"<no value>")),
    (
        r"{{eq .Config.Env .Config.Env}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq .Config.Env .Config.Env>: error calling eq: non-comparable type [HOME=/root PATH=/usr/bin]: []string"#,
        ),
    ),
    (
        r"{{lt true false}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt true false>: error calling lt: invalid type for comparison"#,
        ),
    ),
    (
        r"{{eq 1 1.0}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq 1 1.0>: error calling eq: incompatible types for comparison"#,
        ),
    ),
    (r"{{eq .Size 3838}}", Ok(r"true")),
    (
        r"{{lt .Os 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt .Os 3>: error calling lt: incompatible types for comparison"#,
        ),
    ),
    (
        r"{{upper .Size}}",
        Err(
            r#"template: inspect:1:19: executing "inspect" at <.Size>: wrong type for value; expected string; got int64"#,
        ),
    ),
    (
        r"{{upper 5}}",
        Err(r#"template: inspect:1:19: executing "inspect" at <5>: expected string; found 5"#),
    ),
    (
        r#"{{truncate .Os "2"}}"#,
        Err(r#"template: inspect:1:26: executing "inspect" at <"2">: expected integer; found "2""#),
    ),
    (
        r#"{{join .Config.Labels ","}}"#,
        Err(
            r#"template: inspect:1:25: executing "inspect" at <.Config.Labels>: wrong type for value; expected []string; got map[string]string"#,
        ),
    ),
    (
        r"{{json .Config}}",
        Ok(
            r#"{"Env":["HOME=/root","PATH=/usr/bin"],"Cmd":["sh"],"Labels":{"a":"b","num":"42","with space":"x y","zeta":"last"}}"#,
        ),
    ),
    (
        r"{{range .Os}}x{{end}}",
        Err(
            r#"template: inspect:1:19: executing "inspect" at <.Os>: range can't iterate over linux"#,
        ),
    ),
    (
        r"{{if}}{{end}}",
        Err(r"template: inspect:1: missing value for if"),
    ),
    (r"{{end}}", Err(r"template: inspect:1: unexpected {{end}}")),
    (
        r"{{$x}}",
        Err(r#"template: inspect:1: undefined variable "$x""#),
    ),
    (
        r"{{$x = 1}}",
        Err(r#"template: inspect:1:18: executing "inspect" at <1>: undefined variable: $x"#),
    ),
    (
        r"{{1 | 2}}",
        Err(r"template: inspect:1: non executable command in pipeline stage 2"),
    ),
    (
        r"{{nil}}",
        Err(r#"template: inspect:1:13: executing "inspect" at <nil>: nil is not a command"#),
    ),
    (
        r"{{len 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <len 3>: error calling len: len of type int"#,
        ),
    ),
    (
        r"{{index .Config.Env 5}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env 5>: error calling index: index out of range: 5"#,
        ),
    ),
    (
        r"{{index .Config.Env 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env 2>: error calling index: reflect: slice index out of range"#,
        ),
    ),
    (r"{{index .Config.Env 1}}", Ok(r"PATH=/usr/bin")),
    (r"{{index .Os 1}}", Ok(r"105")),
    (
        r"{{slice .Os 3 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Os 3 1>: error calling slice: invalid slice index: 3 > 1"#,
        ),
    ),
    (r"{{slice .Os 1 3}}", Ok(r"in")),
    (r"{{slice .Config.Env 1}}", Ok(r"[PATH=/usr/bin]")),
    (
        r"{{slice .Config.Env 1 2 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Config.Env 1 2 3>: error calling slice: index out of range: 3"#,
        ),
    ),
    (
        r"{{slice .Os 1 2 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Os 1 2 3>: error calling slice: cannot 3-index slice a string"#,
        ),
    ),
    (r"{{/* c */}}a", Ok(r"a")),
    (r"{{/* c }}", Err(r"template: inspect:1: unclosed comment")),
    (
        r#"{{print 1 2 "a" "b" 3 .Size true}}"#,
        Ok(r"1 2ab3 3838 true"),
    ),
    (r#"{{println 1 "a"}}"#, Ok(r"1 a")),
    (
        r#"{{printf "%5s|%-6s|%03d|%x|%X|%q|%v|%t|%.2f|%8.3f|%e|%g" "ab" "cd" 7 255 "hi" "q\"x" .Config.Env true 3.14159 2.5 123456.789 0.00001}}"#,
        Ok(
            r#"   ab|cd    |007|ff|6869|"q\"x"|[HOME=/root PATH=/usr/bin]|true|3.14|   2.500|1.234568e+05|1e-05"#,
        ),
    ),
    (
        r#"{{printf "%v %v %v %v" 1e6 1e21 123456789.0 0.1}}"#,
        Ok(r"1e+06 1e+21 1.23456789e+08 0.1"),
    ),
    (
        r"{{1e6}} {{1.5}} {{0x1F}} {{'a'}} {{-0}} {{1e21}} {{100000000000000000000.0}}",
        Ok(r"1e+06 1.5 31 97 0 1e+21 1e+20"),
    ),
    (r#"{{printf "%d %s"}}"#, Ok(r"%!d(MISSING) %!s(MISSING)")),
    (r#"{{printf "%d" 1 2}}"#, Ok(r"1%!(EXTRA int=2)")),
    (r#"{{printf "%z" 1}}"#, Ok(r"%!z(int=1)")),
    (
        r#"{{printf "%s" .Config.Env}}"#,
        Ok(r"[HOME=/root PATH=/usr/bin]"),
    ),
    (
        r#"{{printf "%q" .Config.Env}}"#,
        Ok(r#"["HOME=/root" "PATH=/usr/bin"]"#),
    ),
    (
        r#"{{printf "%v" .Config.Labels}}"#,
        Ok(r"map[a:b num:42 with space:x y zeta:last]"),
    ),
    (
        r#"{{printf "%d" .Config.Labels}}"#,
        Ok(
            r"map[%!d(string=a):%!d(string=b) %!d(string=num):%!d(string=42) %!d(string=with space):%!d(string=x y) %!d(string=zeta):%!d(string=last)]",
        ),
    ),
    (
        r#"{{printf "%x" "hi"}} {{printf "% x" "hi"}} {{printf "%#x" 255}} {{printf "%+d" 5}} {{printf "%08.3f" -3.14159}} {{printf "%-5d|" 3}} {{printf "%5.1s|" "abc"}} {{printf "%c" 65}} {{printf "%U" 65}} {{printf "%o %b" 8 5}}"#,
        Ok(r"6869 68 69 0xff +5 -003.142 3    |     a| A U+0041 10 101"),
    ),
    (
        r#"{{title "hello world-foo_bar x.y"}} {{lower "ABC"}} {{split "a,b,c" ","}} {{pad "x" 2 3}}| {{truncate "abcdef" 3}} {{truncate "ab" 5}}"#,
        Ok(r"Hello World-Foo_bar X.Y abc [a b c]   x   | abc ab"),
    ),
    (
        r#"{{html "<a href=\"x\">&'</a>"}} {{js "a'b\"c<d>e&f=g\\"}} {{urlquery "a b&c=d/é"}}"#,
        Ok(
            r#"&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt; a\'b\"c\u003Cd\u003Ee\u0026f\u003Dg\\ a+b%26c%3Dd%2F%C3%A9"#,
        ),
    ),
    (r"{{html 1 2}} {{js}}", Ok(r"1 2 ")),
    (
        r"{{.Os 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <.Os>: Os has arguments but cannot be invoked as function"#,
        ),
    ),
    (r#"{{$x := .Os}}{{$x}}{{$x = "y"}}{{$x}}"#, Ok(r"linuxy")),
    (r"{{with .Config}}{{.Cmd}}{{end}}", Ok(r"[sh]")),
    (r"{{with .Config.Labels.nope}}A{{else}}B{{end}}", Ok(r"B")),
    (r"{{with $l := .Config.Labels}}{{$l.a}}{{end}}", Ok(r"b")),
    (
        r"{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}",
        Ok(r"0:HOME=/root 1:PATH=/usr/bin "),
    ),
    (
        r"{{range $e := .Config.Env}}{{$e}} {{end}}",
        Ok(r"HOME=/root PATH=/usr/bin "),
    ),
    (r"{{range .Annotations}}x{{else}}empty{{end}}", Ok(r"empty")),
    (
        r"{{range .RootFS.Layers}}{{.}}{{end}}",
        Ok(r"sha256:4c81f798ad2f7fadc49a47a1e954c4c32e5616b8dca22a2646279e3b54d2b52f"),
    ),
    (
        r#"{{range $k, $v := .Config.Labels}}{{if eq $k "num"}}{{continue}}{{end}}{{if eq $k "zeta"}}{{break}}{{end}}{{$k}};{{end}}"#,
        Ok(r"a;with space;"),
    ),
    (
        r#"{{if eq .Os "linux"}}L{{else if eq .Os "windows"}}W{{else}}O{{end}}"#,
        Ok(r"L"),
    ),
    (
        r#"{{if eq .Os "x"}}L{{else if eq .Os "linux"}}W{{else}}O{{end}}"#,
        Ok(r"W"),
    ),
    (r"{{if not .Parent}}noparent{{end}}", Ok(r"noparent")),
    (
        r"{{if or .Parent .Os}}{{or .Parent .Os}}{{end}}",
        Ok(r"linux"),
    ),
    (
        r#"{{and 1 0 2}} {{and 1 2}} {{or 0 "" 3}} {{or 0 ""}}"#,
        Ok(r"0 2 3 "),
    ),
    (
        r#"{{gt .Size 100}} {{ge .Size 3838}} {{le .Size 3837}} {{lt 1 2}} {{ne .Os "linux"}} {{eq .Os "a" "b" "linux"}}"#,
        Ok(r"true true false true false true"),
    ),
    (
        r#"{{lt "a" "b"}} {{gt 1.5 1.2}} {{eq true true}} {{eq 3 .Size 3838}}"#,
        Ok(r"true true true false"),
    ),
    (
        r"{{lt 1 1.5}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt 1 1.5>: error calling lt: incompatible types for comparison"#,
        ),
    ),
    (
        r"{{eq}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq>: wrong number of args for eq: want at least 1 got 0"#,
        ),
    ),
    (
        r"{{eq 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq 1>: error calling eq: missing argument for comparison"#,
        ),
    ),
    (
        r"{{ne 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <ne>: wrong number of args for ne: want 2 got 1"#,
        ),
    ),
    (
        r"{{not}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <not>: wrong number of args for not: want 1 got 0"#,
        ),
    ),
    (
        r"{{not 1 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <not>: wrong number of args for not: want 1 got 2"#,
        ),
    ),
    (
        r"{{len}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <len>: wrong number of args for len: want 1 got 0"#,
        ),
    ),
    (
        r"{{len .Os}} {{len .Config.Labels}} {{len .Config.Env}}",
        Ok(r"5 4 2"),
    ),
    (r#"{{index .Config.Labels "with space"}}"#, Ok(r"x y")),
    (
        r"{{index .Config.Labels 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Labels 1>: error calling index: value has type int; should be string"#,
        ),
    ),
    (
        r#"{{index .Config.Env "x"}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env "x">: error calling index: cannot index slice/array with type string"#,
        ),
    ),
    (
        r"{{index .Config.Env nil}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env nil>: error calling index: cannot index slice/array with nil"#,
        ),
    ),
    (
        r"{{index .Config.Env -1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env -1>: error calling index: index out of range: -1"#,
        ),
    ),
    (
        r"{{index .Size 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Size 1>: error calling index: can't index item of type int64"#,
        ),
    ),
    (
        r"{{slice .Size 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Size 1>: error calling slice: can't slice item of type int64"#,
        ),
    ),
    (
        r"{{slice .Os -1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Os -1>: error calling slice: index out of range: -1"#,
        ),
    ),
    (
        r"{{slice .Os 10}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Os 10>: error calling slice: index out of range: 10"#,
        ),
    ),
    (
        r"{{slice .Os 1 2 3 4}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Os 1 2 3 4>: error calling slice: too many slice indexes: 4"#,
        ),
    ),
    (
        r"{{foo}}",
        Err(r#"template: inspect:1: function "foo" not defined"#),
    ),
    (
        r"{{.Os | foo}}",
        Err(r#"template: inspect:1: function "foo" not defined"#),
    ),
    (r"{{.Os | upper | lower}}", Ok(r"linux")),
    (r#"{{.Os | printf "%s-%s" "x"}}"#, Ok(r"x-linux")),
    (r#"{{"x" | printf "%s-%s" .Os}}"#, Ok(r"linux-x")),
    (r"{{.Os | len}}", Ok(r"5")),
    (
        r#"{{.Config.Env | join ","}}"#,
        Err(
            r#"template: inspect:1:32: executing "inspect" at <",">: can't handle "," for arg of type []string"#,
        ),
    ),
    (
        r#"{{"," | join .Config.Env}}"#,
        Ok(r"HOME=/root,PATH=/usr/bin"),
    ),
    (r"{{(.Config).Env}}", Ok(r"[HOME=/root PATH=/usr/bin]")),
    (r#"{{(index .Config.Labels "a")}}"#, Ok(r"b")),
    (
        r#"{{(split "a.b" ".").x}}"#,
        Err(
            r#"template: inspect:1:26: executing "inspect" at <".">: can't evaluate field x in type []string"#,
        ),
    ),
    (
        r"{{$.Os}} {{$}}",
        Err(
            r#"template: inspect:1:14: executing "inspect" at <$.Os>: can't evaluate field Os in type []interface {}"#,
        ),
    ),
    (
        r"{{range .Config.Env}}{{$.Os}}{{end}}",
        Err(
            r#"template: inspect:1:35: executing "inspect" at <$.Os>: can't evaluate field Os in type []interface {}"#,
        ),
    ),
    (r"{{ .Os }}", Ok(r"linux")),
    (r"a  {{- .Os -}}  b", Ok(r"alinuxb")),
    (
        r"a  {{-.Os}}",
        Err(r#"template: inspect:1: bad number syntax: "-.O""#),
    ),
    (
        r"{{.Os-}}",
        Err(r"template: inspect:1: bad character U+002D '-'"),
    ),
    (r"{{- /* comment */ -}}   x", Ok(r"x")),
    (r"x  {{- /* comment */}}   x", Ok(r"x   x")),
    (
        r"{{/* a */ }}",
        Err(r"template: inspect:1: comment ends before closing delimiter"),
    ),
    (
        r"{{ /* a */}}",
        Err(r#"template: inspect:1: unexpected "/" in command"#),
    ),
    (
        r#"{{"a" "b"}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <"a">: can't give argument to non-function "a""#,
        ),
    ),
    (
        r#"{{.Os "b"}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <.Os>: Os has arguments but cannot be invoked as function"#,
        ),
    ),
    (
        r"{{$x := 1}}{{$x 2}}",
        Err(
            r#"template: inspect:1:24: executing "inspect" at <$x>: can't give argument to non-function $x"#,
        ),
    ),
    (
        r"{{. 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <.>: can't give argument to non-function ."#,
        ),
    ),
    (
        r"{{true 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <true>: can't give argument to non-function true"#,
        ),
    ),
    (
        r"{{printf}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <printf>: wrong number of args for printf: want at least 1 got 0"#,
        ),
    ),
    (
        r"{{printf 1}}",
        Err(r#"template: inspect:1:20: executing "inspect" at <1>: expected string; found 1"#),
    ),
    (
        r"{{printf .Size}}",
        Err(
            r#"template: inspect:1:20: executing "inspect" at <.Size>: wrong type for value; expected string; got int64"#,
        ),
    ),
    (
        r"{{printf nil}}",
        Err(r#"template: inspect:1:20: executing "inspect" at <nil>: cannot assign nil to string"#),
    ),
    (
        r"{{html nil}} {{html .Config.Labels.nope}} {{urlquery .Config.Env}}",
        Ok(r"&lt;no value&gt; &lt;no value&gt; %5BHOME%3D%2Froot+PATH%3D%2Fusr%2Fbin%5D"),
    ),
    (
        r#"{{json .Size}} {{json "a<b>&"}} {{json 1.5}} {{json nil}} {{json .Config.Labels.nope}} {{json 1e21}} {{json 0.0000001}}"#,
        Ok(r#"3838 "a<b>&" 1.5 null null 1e+21 1e-7"#),
    ),
    (
        r"{{json}}x",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <json>: wrong number of args for json: want 1 got 0"#,
        ),
    ),
    (
        r"{{json 1 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <json>: wrong number of args for json: want 1 got 2"#,
        ),
    ),
    (
        r"{{split .Os}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <split>: wrong number of args for split: want 2 got 1"#,
        ),
    ),
    (r#"{{split .Os ""}}"#, Ok(r"[l i n u x]")),
    (r#"{{split "" ","}}"#, Ok(r"[]")),
    (
        r"{{pad .Os -1 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <pad .Os -1 2>: error calling pad: strings: negative Repeat count"#,
        ),
    ),
    (r#"{{pad "" 3 3}}|"#, Ok(r"|")),
    (
        r"{{truncate .Os -1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <truncate .Os -1>: error calling truncate: runtime error: slice bounds out of range [:-1]"#,
        ),
    ),
    (r"{{truncate .Os 0}}|", Ok(r"|")),
    (
        r#"{{title "élan vital"}} {{upper "straße"}} {{lower "ÀB"}}"#,
        Ok(r"Élan Vital STRAßE àb"),
    ),
    (
        r"{{call .Os}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <call .Os>: error calling call: non-function of type string"#,
        ),
    ),
    (
        r"{{call .Config.Labels.nope}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <call .Config.Labels.nope>: error calling call: call of nil"#,
        ),
    ),
    (
        r"{{call}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <call>: wrong number of args for call: want at least 1 got 0"#,
        ),
    ),
    (
        r"{{",
        Err(r#"template: inspect:1: unexpected "{" in command"#),
    ),
    (
        r"{{.Os",
        Err(r"template: inspect:1: bad character U+007B '{'"),
    ),
    (
        r"{{.Os}",
        Err(r"template: inspect:1: bad character U+007D '}'"),
    ),
    (r"}}", Ok(r"}}")),
    (
        r"{{{.Os}}",
        Err(r#"template: inspect:1: unexpected "{" in command"#),
    ),
    (r"{{.Os}}}}", Ok(r"linux}}")),
    (
        r"{{ }}",
        Err(r"template: inspect:1: missing value for command"),
    ),
    (
        r"{{-}}",
        Err(r#"template: inspect:1: illegal number syntax: "-""#),
    ),
    (
        r"{{- }}",
        Err(r"template: inspect:1: missing value for command"),
    ),
    (
        r"{{ -}}",
        Err(r"template: inspect:1: missing value for command"),
    ),
    (r"{{-3}}", Ok(r"-3")),
    (r"{{- 3}}", Ok(r"3")),
    (r"{{3 -}}", Ok(r"3")),
    (
        r"{{3-}}",
        Err(r#"template: inspect:1: bad number syntax: "3-""#),
    ),
    (r"{{.Os -}} x", Ok(r"linuxx")),
    (r#"{{"\q"}}"#, Err(r"template: inspect:1: invalid syntax")),
    (
        r"{{'ab'}}",
        Err(r"template: inspect:1: malformed character constant: 'ab'"),
    ),
    (
        r#"{{'\n'}} {{'é'}} {{printf "%c%c" 'h' 'i'}}"#,
        Ok(r"10 233 hi"),
    ),
    (
        r"{{1.5e3}} {{.5}} {{1_000}} {{0b101}} {{0o17}} {{017}} {{0x_1F}} {{-7}} {{+7}}",
        Ok(r"1500 0.5 1000 5 15 15 31 -7 7"),
    ),
    (
        r"{{1.2.3}}",
        Err(r#"template: inspect:1: unexpected ".3" in operand"#),
    ),
    (
        r"{{0x}}",
        Err(r#"template: inspect:1: illegal number syntax: "0x""#),
    ),
    (
        r"{{1a}}",
        Err(r#"template: inspect:1: bad number syntax: "1a""#),
    ),
    (
        r"{{99999999999999999999}}",
        Err(r#"template: inspect:1: integer overflow: "99999999999999999999""#),
    ),
    (
        r"{{18446744073709551615}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <18446744073709551615>: 18446744073709551615 overflows int"#,
        ),
    ),
    (
        r"{{9223372036854775807}} {{-9223372036854775808}}",
        Ok(r"9223372036854775807 -9223372036854775808"),
    ),
    (r"{{$x := 1}}{{$x := 2}}{{$x}}", Ok(r"2")),
    (
        r"{{if true}}{{$x := 1}}{{end}}{{$x}}",
        Err(r#"template: inspect:1: undefined variable "$x""#),
    ),
    (
        r"{{with $x := 1}}{{$x}}{{end}}{{$x}}",
        Err(r#"template: inspect:1: undefined variable "$x""#),
    ),
    (
        r"{{range $i := .Config.Env}}{{end}}{{$i}}",
        Err(r#"template: inspect:1: undefined variable "$i""#),
    ),
    (
        r"{{$x, $y := 1}}",
        Err(r"template: inspect:1: too many declarations in command"),
    ),
    (
        r"{{range $x, $y, $z := .Config.Env}}{{end}}",
        Err(r"template: inspect:1: too many declarations in range"),
    ),
    (
        r"{{range $x, 1 := .Config.Env}}{{end}}",
        Err(r"template: inspect:1: range can only initialize variables"),
    ),
    (
        r"{{$x := 1 | 2}}",
        Err(r"template: inspect:1: non executable command in pipeline stage 2"),
    ),
    (
        r"{{$x := }}",
        Err(r"template: inspect:1: missing value for command"),
    ),
    (
        r"{{$x = 5}}",
        Err(r#"template: inspect:1:18: executing "inspect" at <5>: undefined variable: $x"#),
    ),
    (r"{{$ := 5}}{{$}}", Ok(r"5")),
    (
        r"{{range $i, $e := .Config.Labels}}{{$i}}{{$e}}{{end}}",
        Ok(r"abnum42with spacex yzetalast"),
    ),
    (
        r"{{if 1}}a{{else}}b{{else}}c{{end}}",
        Err(r"template: inspect:1: expected end; found {{else}}"),
    ),
    (
        r"{{if 1}}a{{else if}}b{{end}}",
        Err(r"template: inspect:1: missing value for if"),
    ),
    (
        r"{{range .Config.Env}}a{{else if true}}b{{end}}",
        Err(r"template: inspect:1: unexpected <if> in input"),
    ),
    (
        r"{{with 1}}a{{else}}b{{end}}{{with 0}}a{{else}}b{{end}}",
        Ok(r"ab"),
    ),
    (r"{{break}}", Ok(r"")),
    (
        r"{{range .Config.Env}}{{break 1}}{{end}}",
        Err(r#"template: inspect:1: unexpected "1" in {{break}}"#),
    ),
    (r"{{range .Config.Env}}{{else}}{{break}}{{end}}", Ok(r"")),
    (r"{{range .Config.Env}}{{continue}}x{{end}}y", Ok(r"y")),
    (
        r"{{range .Config.Env}}{{if true}}{{break}}{{end}}x{{end}}y",
        Ok(r"y"),
    ),
    (
        r"{{range $i, $e := .Config.Env}}{{range $.Config.Cmd}}{{$i}}{{.}}{{break}}{{end}}{{end}}",
        Err(
            r#"template: inspect:1:51: executing "inspect" at <$.Config.Cmd>: can't evaluate field Config in type []interface {}"#,
        ),
    ),
    (
        r#"{{define "x"}}X{{.}}{{end}}{{template "x" .Os}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "x"}}X{{end}}{{template "y"}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{template "x" .Os}}{{define "x"}}[{{.}}]{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (r#"{{block "b" .Os}}<{{.}}>{{end}}"#, Ok(r"<linux>")),
    (
        r#"{{define "x"}}{{.Foo}}{{end}}{{template "x" .Os}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "x"}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{template "x"}}"#,
        Err(
            r#"template: inspect:1:22: executing "inspect" at <{{template "x"}}>: template "x" not defined"#,
        ),
    ),
    (
        r"{{template x}}",
        Err(r#"template: inspect:1: unexpected "x" in template clause"#),
    ),
    (
        r#"{{template "x" 1 2}}"#,
        Err(
            r#"template: inspect:1:22: executing "inspect" at <{{template "x" 1 2}}>: template "x" not defined"#,
        ),
    ),
    (
        r#"{{define "x"}}{{template "x"}}{{end}}{{template "x"}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (r"{{else}}", Ok(r"")),
    (
        r"{{if true}}{{end}}{{end}}",
        Err(r"template: inspect:1: unexpected {{end}}"),
    ),
    (
        r"{{.Os | 1}}",
        Err(r"template: inspect:1: non executable command in pipeline stage 2"),
    ),
    (
        r#"{{.Os | "x"}}"#,
        Err(r"template: inspect:1: non executable command in pipeline stage 2"),
    ),
    (
        r"{{.Os | .Os}}",
        Err(
            r#"template: inspect:1:19: executing "inspect" at <.Os>: Os has arguments but cannot be invoked as function"#,
        ),
    ),
    (
        r"{{.Os | $}}",
        Err(
            r#"template: inspect:1:19: executing "inspect" at <$>: can't give argument to non-function $"#,
        ),
    ),
    (
        r#"{{"x" | .Os}}"#,
        Err(
            r#"template: inspect:1:19: executing "inspect" at <.Os>: Os has arguments but cannot be invoked as function"#,
        ),
    ),
    (
        r#"{{"x" | $.Os}}"#,
        Err(
            r#"template: inspect:1:20: executing "inspect" at <$.Os>: can't evaluate field Os in type []interface {}"#,
        ),
    ),
    (
        r#"{{"x" | (.Os)}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <"x">: can't give argument to non-function .Os"#,
        ),
    ),
    (r#"{{"x" | not}}"#, Ok(r"false")),
    (r"{{1 | eq 1}}", Ok(r"true")),
    (
        r"{{1 | eq}}",
        Err(
            r#"template: inspect:1:17: executing "inspect" at <eq>: error calling eq: missing argument for comparison"#,
        ),
    ),
    (r#"{{"a" | printf}}"#, Ok(r"a")),
    (r#"{{"a" | lower}}"#, Ok(r"a")),
    (
        r#"{{"a" | lower "b"}}"#,
        Err(
            r#"template: inspect:1:19: executing "inspect" at <lower>: wrong number of args for lower: want 1 got 2"#,
        ),
    ),
    (r#"{{.Os | len | printf "%03d"}}"#, Ok(r"005")),
    (
        r#"{{nil | printf "%v"}}"#,
        Err(r#"template: inspect:1:13: executing "inspect" at <nil>: nil is not a command"#),
    ),
    (r#"{{printf "%v" nil}}"#, Ok(r"<nil>")),
    (
        r"{{upper nil}}",
        Err(r#"template: inspect:1:19: executing "inspect" at <nil>: cannot assign nil to string"#),
    ),
    (r#"{{join nil ","}}|"#, Ok(r"|")),
    (
        r"{{len nil}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <len nil>: error calling len: reflect: call of reflect.Value.Type on zero Value"#,
        ),
    ),
    (
        r"{{index nil 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index nil 1>: error calling index: index of untyped nil"#,
        ),
    ),
    (r"{{not nil}}", Ok(r"true")),
    (r"{{and nil 1}}", Ok(r"<no value>")),
    (r"{{eq nil nil}}", Ok(r"true")),
    (
        r"{{(nil).X}}",
        Err(r#"template: inspect:1:14: executing "inspect" at <nil>: nil is not a command"#),
    ),
    (
        r"{{nil.X}}",
        Err(r#"template: inspect:1: unexpected . after term "nil""#),
    ),
    (
        r"{{true.X}}",
        Err(r#"template: inspect:1: unexpected . after term "true""#),
    ),
    (
        r#"{{"a".X}}"#,
        Err(r#"template: inspect:1: unexpected . after term "\"a\"""#),
    ),
    (
        r"{{..X}}",
        Err(r#"template: inspect:1: unexpected . after term ".""#),
    ),
    (
        r"{{.X.}}",
        Err(r"template: inspect:1: unexpected <.> in operand"),
    ),
    (
        r"{{$.}}",
        Err(r"template: inspect:1: unexpected <.> in operand"),
    ),
    (
        r"{{.Os.}}",
        Err(r"template: inspect:1: unexpected <.> in operand"),
    ),
    (
        r"{{.Config.Env.x}}",
        Err(
            r#"template: inspect:1:20: executing "inspect" at <.Config.Env.x>: can't evaluate field x in type []string"#,
        ),
    ),
    (
        r#"{{(printf "%s" .Os).X}}"#,
        Err(
            r#"template: inspect:1:26: executing "inspect" at <.Os>: can't evaluate field X in type string"#,
        ),
    ),
    (r#"{{printf "%s" .Os | printf "%q"}}"#, Ok(r#""linux""#)),
    (r#"{{printf "%[2]s %[1]s" "a" "b"}}"#, Ok(r"b a")),
    (r#"{{printf "%[3]s" "a"}}"#, Ok(r"%!s(BADINDEX)")),
    (
        r#"{{printf "%*d|%-*d|%.*f" 5 1 4 2 2 3.14159}}"#,
        Ok(r"    1|2   |3.14"),
    ),
    (r#"{{printf "%!" 1}}"#, Ok(r"%!!(int=1)")),
    (r#"{{printf "%" 1}}"#, Ok(r"%!(NOVERB)%!(EXTRA int=1)")),
    (r#"{{printf "%.d|%.0d|%5.d|" 0 0 0}}"#, Ok(r"||     |")),
    (
        r#"{{printf "%T %T %T %T %T %T %T" 1 1.5 "s" true .Size .Config.Env .Config.Labels}}"#,
        Ok(r"int float64 string bool int64 []string map[string]string"),
    ),
    (
        r#"{{printf "%#v %#v %#v %#v" 1 "s" .Config.Env .Config.Labels}}"#,
        Ok(
            r#"1 "s" []string{"HOME=/root", "PATH=/usr/bin"} map[string]string{"a":"b", "num":"42", "with space":"x y", "zeta":"last"}"#,
        ),
    ),
    (
        r#"{{printf "%+v %+d % d %x %X %#o %O" 5 5 5 -255 "Hi" 8 8}}"#,
        Ok(r"5 +5  5 -ff 4869 010 0o10"),
    ),
    (
        r#"{{printf "%e %E %.3e %g %G %.3g %.10g %f %.0f %5.1f|%-8.2f|%+.1f" 1234.5678 0.000012 1.0 1e-7 1e20 1234.5678 1.0 0.1 2.5 3.14159 2.0 3.0}}"#,
        Ok(
            r"1.234568e+03 1.200000E-05 1.000e+00 1e-07 1E+20 1.23e+03 1 0.100000 2   3.1|2.00    |+3.0",
        ),
    ),
    (
        r#"{{printf "%g %g %g %g %g %v %v" 100000.0 1000000.0 0.0001 0.00001 1.5e300 -0.0 123456.0}}"#,
        Ok(r"100000 1e+06 0.0001 1e-05 1.5e+300 -0 123456"),
    ),
    (
        r#"{{printf "%6.2f|%-6.2f|%06.2f|%+06.2f" 3.14159 3.14159 -3.14159 3.14159}}"#,
        Ok(r"  3.14|3.14  |-03.14|+03.14"),
    ),
    (
        r#"{{printf "%s|%10s|%-10s|%.2s|%q|%+q|%#q|%x|%X|% x" "héllo" "héllo" "héllo" "héllo" "héllo" "héllo" "héllo" "hé" "hé" "hé"}}"#,
        Ok(r#"héllo|     héllo|héllo     |hé|"héllo"|"h\u00e9llo"|`héllo`|68c3a9|68C3A9|68 c3 a9"#),
    ),
    (
        r#"{{printf "%05s|%-05d|%05d|%x|%q|%c|%U|%#U" "ab" 3 -42 -1 65 0x1F600 0x1F600 0x1F600}}"#,
        Ok(r"000ab|3    |-0042|-1|'A'|😀|U+1F600|U+1F600 '😀'"),
    ),
    (
        r#"{{printf "%t %t %v" true 1 false}}"#,
        Ok(r"true %!t(int=1) false"),
    ),
    (
        r#"{{printf "%d %d" .Config.Env .Size}}"#,
        Ok(r"[%!d(string=HOME=/root) %!d(string=PATH=/usr/bin)] 3838"),
    ),
    (
        r#"{{printf "%5s|" .Config.Env}}"#,
        Ok(r"[HOME=/root PATH=/usr/bin]|"),
    ),
    (
        r#"{{printf "%v" (split "a b" " ")}} {{printf "%q" (split "a b" " ")}}"#,
        Ok(r#"[a b] ["a" "b"]"#),
    ),
    (r#"{{printf "%s %d" 1}}"#, Ok(r"%!s(int=1) %!d(MISSING)")),
    (
        r#"{{print}}|{{print nil}}|{{print "a" 1 2 "b" "c" nil 3}}|{{println}}|"#,
        Ok(r"|<nil>|a1 2bc<nil> 3|
|"),
    ),
    (
        r"{{print .Config.Labels.nope}} {{println .Config.Labels.nope 1}}",
        Ok(r"<nil> <nil> 1"),
    ),
    (
        r#"{{html .Config.Env}} {{js .Config.Labels}} {{urlquery 1 "a b"}}"#,
        Ok(r"[HOME=/root PATH=/usr/bin] map[a:b num:42 with space:x y zeta:last] 1a+b"),
    ),
    (
        r#"{{js "\x01\x1f \u2028 é"}}"#,
        Ok(r"\u0001\u001F \u2028 é"),
    ),
    (
        r#"{{printf "%q" "\x00\x07\x7f\u00a0\u200b\U0001F600 \t"}}"#,
        Ok(r#""\x00\a\x7f\u00a0\u200b😀 \t""#),
    ),
    (
        r#"{{len "héllo"}} {{slice "héllo" 1 3}} {{index "héllo" 1}}"#,
        Ok(r"6 é 195"),
    ),
    (
        r"{{range $i, $e := .Config.Env}}{{if $i}}, {{end}}{{$e}}{{end}}",
        Ok(r"HOME=/root, PATH=/usr/bin"),
    ),
    (
        r"{{range .Config.Env -}}
  {{.}}
{{end -}}",
        Ok(r"HOME=/root
PATH=/usr/bin"),
    ),
    (
        r"{{- range $k, $v := .Config.Labels }}
{{ $k }}: {{ $v }}
{{- end }}",
        Ok(r"
a: b
num: 42
with space: x y
zeta: last"),
    ),
    (
        r"{{/* multi
line comment */}}ok",
        Ok(r"ok"),
    ),
    (
        r"{{with .RootFS}}{{.Type}}:{{range .Layers}}{{slice . 7 19}}{{end}}{{else}}none{{end}}",
        Ok(r"layers:4c81f798ad2f"),
    ),
    (
        r"{{with .Config}}{{with .Labels}}{{.a}}-{{$.Os}}{{end}}{{end}}",
        Err(
            r#"template: inspect:1:53: executing "inspect" at <$.Os>: can't evaluate field Os in type []interface {}"#,
        ),
    ),
    (
        r"{{$n := 0}}{{range .Config.Env}}{{$n = len .}}{{end}}{{$n}}",
        Ok(r"13"),
    ),
    (
        r"{{$n := 0}}{{range $i, $_ := .Config.Env}}{{$n = $i}}{{end}}{{$n}}",
        Ok(r"1"),
    ),
    (
        r"{{range .Config.Env}}{{$x := .}}{{end}}{{$x}}",
        Err(r#"template: inspect:1: undefined variable "$x""#),
    ),
    (
        r"{{if and .Config.Env (gt (len .Config.Env) 1)}}many{{end}}",
        Ok(r"many"),
    ),
    (
        r#"{{if or (eq .Os "windows") (eq .Architecture "amd64")}}match{{end}}"#,
        Ok(r"match"),
    ),
    (
        r#"{{if not (eq .Size 0)}}{{printf "%.1f kB" 3.838}}{{end}}"#,
        Ok(r"3.8 kB"),
    ),
    (
        r#"{{index .RepoTags 0}} {{index .RootFS.Layers 0 | printf "%.19s"}}"#,
        Ok(r"localhost/tmp/lay:latest sha256:4c81f798ad2f"),
    ),
    (
        r#"{{range .RepoTags}}{{$parts := split . ":"}}{{index $parts 0}} / {{index $parts 1}}{{end}}"#,
        Ok(r"localhost/tmp/lay / latest"),
    ),
    (
        r"{{json .History}}",
        Ok(
            r#"[{"created":"2026-11-28T11:05:16.786579388Z","created_by":"umoci config","empty_layer":true},{"created":"2026-11-28T11:05:35.548019927Z","created_by":"umoci repack"},{"created":"2026-11-28T11:05:35.567078017Z","created_by":"umoci config","empty_layer":true}]"#,
        ),
    ),
    (
        r"{{json .RootFS}}",
        Ok(
            r#"{"Type":"layers","Layers":["sha256:4c81f798ad2f7fadc49a47a1e954c4c32e5616b8dca22a2646279e3b54d2b52f"]}"#,
        ),
    ),
    (
        r"{{json .Labels}} {{json .Annotations}} {{json .Parent}}",
        Ok(r#"{"a":"b","num":"42","with space":"x y","zeta":"last"} {} """#),
    ),
    (
        r"{{.Digest | truncate 19}}",
        Err(r#"template: inspect:1:32: executing "inspect" at <19>: expected string; found 19"#),
    ),
    (r#"{{pad .Os 1 1 | printf "[%s]"}}"#, Ok(r"[ linux ]")),
    (
        r"{{lower .ManifestType | upper}}",
        Ok(r"APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON"),
    ),
    (r#"{{title .Os}} {{title "a_b c-d"}}"#, Ok(r"Linux A_b C-D")),
    (r#"{{join (split "a-b-c" "-") "+"}}"#, Ok(r"a+b+c")),
    (
        r#"{{range (split "x y z" " ")}}<{{.}}>{{end}}"#,
        Ok(r"<x><y><z>"),
    ),
    (
        r#"{{range $i, $c := split "abc" ""}}{{$i}}{{$c}}{{end}}"#,
        Ok(r"0a1b2c"),
    ),
    (
        r#"{{printf "%v|%s|%d" .Size .Size .Size}}"#,
        Ok(r"3838|%!s(int64=3838)|3838"),
    ),
    (r#"{{printf "%.2f" .Size}}"#, Ok(r"%!f(int64=3838)")),
    (
        r#"{{printf "%x" .Size}} {{printf "%08b" 5}}"#,
        Ok(r"efe 00000101"),
    ),
    (
        r#"{{printf "%v" .RootFS.Layers}} {{printf "%s" .Labels}} {{printf "%q" .Labels}}"#,
        Ok(
            r#"[sha256:4c81f798ad2f7fadc49a47a1e954c4c32e5616b8dca22a2646279e3b54d2b52f] map[a:b num:42 with space:x y zeta:last] map["a":"b" "num":"42" "with space":"x y" "zeta":"last"]"#,
        ),
    ),
    (
        r#"{{printf "%6v|%-6v|" .Config.Cmd .Config.Cmd}}"#,
        Ok(r"[    sh]|[sh    ]|"),
    ),
    (
        r"{{with .Parent}}has{{else}}no parent{{end}}",
        Ok(r"no parent"),
    ),
    (r"{{.Labels.a}}{{.Labels.nope}}", Ok(r"b<no value>")),
    (r#"{{if index .Labels "a"}}has a{{end}}"#, Ok(r"has a")),
    (
        r#"{{if eq (index .Labels "num") "42"}}num42{{end}}"#,
        Ok(r"num42"),
    ),
    (
        r"{{range $k, $v := .GraphDriver.Data}}{{$k}}{{end}}",
        Ok(r"UpperDirWorkDir"),
    ),
    (r"{{.GraphDriver.Data.UpperDir | len}}", Ok(r"105")),
    (
        r"{{range $i, $e := .Config.Env}}{{$i}}{{else}}none{{end}}",
        Ok(r"01"),
    ),
    (
        r"{{range .Config.Env}}{{.}}{{break}}{{end}}",
        Ok(r"HOME=/root"),
    ),
    (
        r#"{{range .Config.Env}}{{if eq . "HOME=/root"}}{{continue}}{{end}}{{.}}{{end}}"#,
        Ok(r"PATH=/usr/bin"),
    ),
    (r"{{.Os}}{{/* trailing */}}", Ok(r"linux")),
    (r"{{.Os}} {{- /* x */ -}} {{.Os}}", Ok(r"linuxlinux")),
    (
        r"{{- if true -}}   T   {{- else -}}  F  {{- end -}}",
        Ok(r"T"),
    ),
    (
        r"{{if false}}a{{else if false}}b{{else if true}}c{{else}}d{{end}}",
        Ok(r"c"),
    ),
    (
        r"{{and}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <and>: wrong number of args for and: want at least 1 got 0"#,
        ),
    ),
    (
        r"{{or}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <or>: wrong number of args for or: want at least 1 got 0"#,
        ),
    ),
    (r"{{and 1}}", Ok(r"1")),
    (
        r#"{{printf "%s" (index .Config.Env 0 | split "=" | len)}}"#,
        Ok(r"%!s(int=1)"),
    ),
    (r"{{index .Config.Env 0 | len}}", Ok(r"10")),
    (r#"{{(len .Config.Env) | printf "%d"}}"#, Ok(r"2")),
    (r#"{{.Size | printf "%d"}}"#, Ok(r"3838")),
    (
        r#"{{.Size | truncate "abc"}}"#,
        Err(
            r#"template: inspect:1:30: executing "inspect" at <"abc">: wrong type for value; expected int; got int64"#,
        ),
    ),
    (
        r#"{{truncate "abc" .Size}}"#,
        Err(
            r#"template: inspect:1:28: executing "inspect" at <.Size>: wrong type for value; expected int; got int64"#,
        ),
    ),
    (r#"{{truncate "abc" (len "ab")}}"#, Ok(r"ab")),
    (
        r#"{{pad "x" .Size 1}}"#,
        Err(
            r#"template: inspect:1:21: executing "inspect" at <.Size>: wrong type for value; expected int; got int64"#,
        ),
    ),
    (
        r#"{{split .Size ","}}"#,
        Err(
            r#"template: inspect:1:19: executing "inspect" at <.Size>: wrong type for value; expected string; got int64"#,
        ),
    ),
    (
        r#"{{join .Labels ","}}"#,
        Err(
            r#"template: inspect:1:18: executing "inspect" at <.Labels>: wrong type for value; expected []string; got map[string]string"#,
        ),
    ),
    (
        r#"{{join .Os ","}}"#,
        Err(
            r#"template: inspect:1:18: executing "inspect" at <.Os>: wrong type for value; expected []string; got string"#,
        ),
    ),
    (
        r"{{lower}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lower>: wrong number of args for lower: want 1 got 0"#,
        ),
    ),
    (
        r"{{lower 1 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lower>: wrong number of args for lower: want 1 got 2"#,
        ),
    ),
    (
        r"{{.Os | lower 1}}",
        Err(
            r#"template: inspect:1:19: executing "inspect" at <lower>: wrong number of args for lower: want 1 got 2"#,
        ),
    ),
    (
        r"{{upper .Config.Labels.nope}}",
        Err(
            r#"template: inspect:1:26: executing "inspect" at <.Config.Labels.nope>: invalid value; expected string"#,
        ),
    ),
    (
        r"{{printf .Config.Labels.nope}}",
        Err(
            r#"template: inspect:1:27: executing "inspect" at <.Config.Labels.nope>: invalid value; expected string"#,
        ),
    ),
    (r#"{{printf "%d" .Config.Labels.nope}}"#, Ok(r"%!d(<nil>)")),
    (r"{{json .Config.Labels.nope}}", Ok(r"null")),
    (
        r"{{eq .Config.Labels.nope .Config.Labels.nope2}}",
        Ok(r"true"),
    ),
    (r"{{eq .Os .Config.Labels.nope}}", Ok(r"false")),
    (
        r"{{lt .Config.Labels.nope 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt .Config.Labels.nope 1>: error calling lt: invalid type for comparison"#,
        ),
    ),
    (
        r"{{lt .Config.Env 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt .Config.Env 1>: error calling lt: invalid type for comparison"#,
        ),
    ),
    (
        r"{{lt 1 .Config.Env}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt 1 .Config.Env>: error calling lt: invalid type for comparison"#,
        ),
    ),
    (
        r"{{eq .Config.Env 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq .Config.Env 1>: error calling eq: incompatible types for comparison"#,
        ),
    ),
    (
        r"{{eq .Config.Env .Labels}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq .Config.Env .Labels>: error calling eq: non-comparable types [HOME=/root PATH=/usr/bin]: []string, map[string]string: map[a:b num:42 with space:x y zeta:last]"#,
        ),
    ),
    (
        r"{{eq .Labels .Labels}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq .Labels .Labels>: error calling eq: non-comparable type map[a:b num:42 with space:x y zeta:last]: map[string]string"#,
        ),
    ),
    (
        r"{{ne .Config.Env .Config.Env}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <ne .Config.Env .Config.Env>: error calling ne: non-comparable type [HOME=/root PATH=/usr/bin]: []string"#,
        ),
    ),
    (r"{{eq .Size 3838 1}}", Ok(r"true")),
    (
        r#"{{eq "a" 1}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq "a" 1>: error calling eq: incompatible types for comparison"#,
        ),
    ),
    (
        r#"{{ge 2.5 2.5}} {{le "b" "a"}} {{gt "b" "a"}} {{lt -1 0}}"#,
        Ok(r"true false true true"),
    ),
    (
        r"{{lt 1.5 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt 1.5 2>: error calling lt: incompatible types for comparison"#,
        ),
    ),
    (r"{{slice .Config.Env 0 1 2}}", Ok(r"[HOME=/root]")),
    (
        r"{{slice .Config.Env 2 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Config.Env 2 1>: error calling slice: invalid slice index: 2 > 1"#,
        ),
    ),
    (
        r"{{slice .Config.Env 0 1 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Config.Env 0 1 3>: error calling slice: index out of range: 3"#,
        ),
    ),
    (
        r"{{slice .Config.Env 0 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Config.Env 0 3>: error calling slice: index out of range: 3"#,
        ),
    ),
    (
        r#"{{slice .Config.Env "a"}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Config.Env "a">: error calling slice: cannot index slice/array with type string"#,
        ),
    ),
    (
        r"{{slice .Labels 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice .Labels 1>: error calling slice: can't slice item of type map[string]string"#,
        ),
    ),
    (
        r"{{slice nil 1}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice nil 1>: error calling slice: slice of untyped nil"#,
        ),
    ),
    (r"{{slice .Os}}", Ok(r"linux")),
    (r"{{index .Config.Env 1 0}}", Ok(r"80")),
    (r"{{index .Config.Env 0 1}}", Ok(r"79")),
    (
        r"{{index .Config.Env 0 1 2}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env 0 1 2>: error calling index: can't index item of type uint8"#,
        ),
    ),
    (
        r"{{index .Labels nil}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Labels nil>: error calling index: value is nil; should be of type string"#,
        ),
    ),
    (
        r"{{index .Labels .Size}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Labels .Size>: error calling index: value has type int64; should be string"#,
        ),
    ),
    (
        r"{{index .Config.Env 1.5}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env 1.5>: error calling index: cannot index slice/array with type float64"#,
        ),
    ),
    (
        r"{{index .Config.Env true}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index .Config.Env true>: error calling index: cannot index slice/array with type bool"#,
        ),
    ),
    (
        r"{{.Os

",
        Err(r#"template: inspect:3: unexpected "{" in operand"#),
    ),
    (
        r"{{if
.Os}}x{{end}}",
        Ok(r"x"),
    ),
    (
        r"{{.Os |
upper}}",
        Ok(r"LINUX"),
    ),
    (
        r#"{{"a
b"}}"#,
        Err(r"template: inspect:1: unterminated quoted string"),
    ),
    (
        r"{{`a
b`}}",
        Ok(r"a
b"),
    ),
    (
        r"{{/* a
b */}}c",
        Ok(r"c"),
    ),
    (
        r"{{/* a */ x}}",
        Err(r"template: inspect:1: comment ends before closing delimiter"),
    ),
    (
        r"x
{{.Os
",
        Err(r#"template: inspect:3: unexpected "{" in operand"#),
    ),
    (r"{{.Os | }}", Ok(r"linux")),
    (
        r"{{| .Os}}",
        Err(r#"template: inspect:1: unexpected "|" in command"#),
    ),
    (
        r"{{.Os ||}}",
        Err(r#"template: inspect:1: unexpected "|" in command"#),
    ),
    (
        r"{{:=}}",
        Err(r#"template: inspect:1: unexpected ":=" in command"#),
    ),
    (
        r"{{$x :}}",
        Err(r#"template: inspect:1: undefined variable "$x""#),
    ),
    (
        r"{{$x := := 1}}",
        Err(r#"template: inspect:1: unexpected ":=" in command"#),
    ),
    (r#"{{"\u00"}}"#, Err(r"template: inspect:1: invalid syntax")),
    (r#"{{"\400"}}"#, Err(r"template: inspect:1: invalid syntax")),
    (r#"{{"\xZZ"}}"#, Err(r"template: inspect:1: invalid syntax")),
    (r"{{'\400'}}", Err(r"template: inspect:1: invalid syntax")),
    (r"{{''}}", Err(r"template: inspect:1: invalid syntax")),
    (
        r"{{.Os,}}",
        Err(r#"template: inspect:1: unexpected "," in operand"#),
    ),
    (
        r"{{$x, $y := .Os}}",
        Err(r"template: inspect:1: too many declarations in command"),
    ),
    (
        r"{{with $x, $y := .Os}}{{end}}",
        Err(r"template: inspect:1: too many declarations in with"),
    ),
    (
        r"{{range $x, $y = .Config.Env}}{{$x}}{{end}}",
        Err(
            r#"template: inspect:1:35: executing "inspect" at <.Config.Env>: undefined variable: $x"#,
        ),
    ),
    (
        r"{{range $x = .Config.Env}}{{$x}}{{end}}",
        Err(
            r#"template: inspect:1:31: executing "inspect" at <.Config.Env>: undefined variable: $x"#,
        ),
    ),
    (
        r"{{$x := 1}}{{range $x = .Config.Env}}{{$x}}{{end}}{{$x}}",
        Ok(r"HOME=/rootPATH=/usr/binPATH=/usr/bin"),
    ),
    (r"{{if $x := .Os}}{{$x}}{{end}}", Ok(r"linux")),
    (
        r"{{range .Config.Env}}{{if 1}}{{continue}}{{end}}{{end}}ok",
        Ok(r"ok"),
    ),
    (
        r"{{range .Config.Env}}{{with 1}}{{break}}{{end}}{{end}}ok",
        Ok(r"ok"),
    ),
    (
        r#"{{define "a"}}{{break}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "a"}}x{{end}}{{define "a"}}y{{end}}{{template "a"}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "a"}}x{{end}}{{define "a"}}{{end}}{{template "a"}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "a"}}{{end}}{{define "a"}}y{{end}}{{template "a"}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "a" 1}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r"{{define a}}{{end}}",
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{if 1}}{{define "a"}}{{end}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{define "a"}}{{else}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{template "a" | }}"#,
        Err(r#"template: inspect:1: unexpected "|" in template clause"#),
    ),
    (
        r#"{{define "a"}}{{$x}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (
        r#"{{$x := 1}}{{define "a"}}{{$x}}{{end}}"#,
        Err(r"template: inspect:1: unexpected <define> in command"),
    ),
    (r#"{{printf "%v %v" (1) ("a")}}"#, Ok(r"1 a")),
    (
        r"{{(1).X}}",
        Err(
            r#"template: inspect:1:14: executing "inspect" at <1>: can't evaluate field X in type int"#,
        ),
    ),
    (r"{{(.Config).Labels.a}}", Ok(r"b")),
    (r#"{{printf "%s" (.Config.Labels).a}}"#, Ok(r"b")),
    (r#"{{printf "%d" (len (index .Config.Env 0))}}"#, Ok(r"10")),
    (
        r#"{{printf "%3c|%-4q|%#q|%#q" 65 66 "a`b" "ab"}}"#,
        Ok(r#"  A|'B' |"a`b"|`ab`"#),
    ),
    (
        r#"{{printf "%#v %#v %#v" 1.5 true nil}}"#,
        Ok(r"1.5 true <nil>"),
    ),
    (
        r#"{{printf "%08.3e|%+.2e|% .3f|%x|%X" 1234.5 -0.5 2.0 255 3.5}}"#,
        Ok(r"1.234e+03|-5.00e-01| 2.000|ff|0X1.CP+01"),
    ),
    (
        r#"{{printf "%6.3v|%.1v|%10.4v" 3.14159 "abc" 2.0}}"#,
        Ok(r"  3.14|a|         2"),
    ),
    (
        r#"{{printf "%-+5d|%+-5d|%0-5d|" 3 3 3}}"#,
        Ok(r"+3   |+3   |3    |"),
    ),
    (r#"{{printf "%[1]d %[1]x %[1]o" 64}}"#, Ok(r"64 40 100")),
    (r#"{{printf "%[0]d" 1}}"#, Ok(r"%!d(BADINDEX)")),
    (r#"{{printf "%[x]d" 1}}"#, Ok(r"%!d(BADINDEX)")),
    (r#"{{printf "%[2]d" 1}}"#, Ok(r"%!d(BADINDEX)")),
    (r#"{{printf "%*d" "a" 1}}"#, Ok(r"%!(BADWIDTH)1")),
    (r#"{{printf "%.*d" -1 5}}"#, Ok(r"%!(BADPREC)5")),
    (r#"{{printf "%-*d|" -5 1}}"#, Ok(r"1    |")),
    (r#"{{printf "%d %d %d" 1 2}}"#, Ok(r"1 2 %!d(MISSING)")),
    (r#"{{printf "%%|%5%|%c" 0x41}}"#, Ok(r"%|%|A")),
    (
        r#"{{printf "%v" 18446744073709551615.0}}"#,
        Ok(r"1.8446744073709552e+19"),
    ),
    (
        r#"{{printf "%.0f %.0f %.0f %.0f" 0.5 1.5 2.5 -0.5}}"#,
        Ok(r"0 2 2 -0"),
    ),
    (
        r#"{{printf "%.1f %.2f %.3g" 0.05 1.005 0.0001234}}"#,
        Ok(r"0.1 1.00 0.000123"),
    ),
    (
        r#"{{printf "%g %g %e" 1e100 1e-100 5e-324}}"#,
        Ok(r"1e+100 1e-100 4.940656e-324"),
    ),
    (
        r#"{{printf "%v %v" 3.0 100000000000000000000000.0}}"#,
        Ok(r"3 1e+23"),
    ),
    (
        r"{{0.1}} {{-1.5}} {{1e-7}} {{12345678.0}} {{.5e1}}",
        Ok(r"0.1 -1.5 1e-07 1.2345678e+07 5"),
    ),
    (r#"{{printf "%s" 1.5}}"#, Ok(r"%!s(float64=1.5)")),
    (
        r#"{{printf "%U %#U %c %q" -1 10 -1 10}}"#,
        Ok(r"U+FFFFFFFFFFFFFFFF U+000A � '\n'"),
    ),
    (
        r#"{{printf "%x % X %#x" .Config.Env "ab" "ab"}}"#,
        Ok(r"[484f4d453d2f726f6f74 504154483d2f7573722f62696e] 61 62 0x6162"),
    ),
    (
        r#"{{printf "%t" .Config.Env}}"#,
        Ok(r"[%!t(string=HOME=/root) %!t(string=PATH=/usr/bin)]"),
    ),
    (
        r"{{println}}x{{print}}y",
        Ok(r"
xy"),
    ),
    (
        r#"{{print "a" "b"}}{{print 1 2}}{{print "a" 1 "b"}}{{print 1 "a" 2}}"#,
        Ok(r"ab1 2a1b1a2"),
    ),
    (r#"{{println "a" "b" 1}}"#, Ok(r"a b 1")),
    (
        r#"{{html "a" 1 "b"}} {{js 1 2}} {{urlquery "é/?" "x"}}"#,
        Ok(r"a1b 1 2 %C3%A9%2F%3Fx"),
    ),
    (r"{{len .Config.Env | eq 2}}", Ok(r"true")),
    (
        r#"{{not 0}} {{not ""}} {{not .Config.Env}} {{not .Annotations}}"#,
        Ok(r"true true false true"),
    ),
    (
        r"{{and .Os .Size}} {{or .Parent .Comment}} {{and .Os .Parent .Size}}",
        Ok(r"3838  "),
    ),
    (
        r"{{or .Parent (index .Config.Env 5)}}",
        Err(
            r#"template: inspect:1:25: executing "inspect" at <index .Config.Env 5>: error calling index: index out of range: 5"#,
        ),
    ),
    (r"{{and .Parent (index .Config.Env 5)}}", Ok(r"")),
    (
        r"{{.Os | and .Size}} {{.Parent | or .Comment}}",
        Ok(r"linux "),
    ),
    (
        r"{{lt 1 2 3}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <lt>: wrong number of args for lt: want 2 got 3"#,
        ),
    ),
    (
        r"{{eq .Os}}",
        Err(
            r#"template: inspect:1:13: executing "inspect" at <eq .Os>: error calling eq: missing argument for comparison"#,
        ),
    ),
    (r#"{{eq "a" "b" "c" "a"}}"#, Ok(r"true")),
    (
        r#"{{ne "a" "a" "b"}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <ne>: wrong number of args for ne: want 2 got 3"#,
        ),
    ),
    (
        r#"{{slice "abc" 1 2 3}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <slice "abc" 1 2 3>: error calling slice: cannot 3-index slice a string"#,
        ),
    ),
    (
        r#"{{slice "abc" 0 0}}|{{slice "abc" 3}}|{{slice "abc"}}"#,
        Ok(r"||abc"),
    ),
    (r"{{slice .Config.Env 0 0}}", Ok(r"[]")),
    (
        r"{{index .Config.Labels}}",
        Ok(r"map[a:b num:42 with space:x y zeta:last]"),
    ),
    (
        r#"{{index "abc" 3}}"#,
        Err(
            r#"template: inspect:1:13: executing "inspect" at <index "abc" 3>: error calling index: reflect: string index out of range"#,
        ),
    ),
    (r#"{{index "abc" 2}}"#, Ok(r"99")),
    (r#"{{index .Config.Labels "a" 0}}"#, Ok(r"98")),
    (
        r"{{truncate .Os .Size}}",
        Err(
            r#"template: inspect:1:26: executing "inspect" at <.Size>: wrong type for value; expected int; got int64"#,
        ),
    ),
    (
        r"{{with .Os}}{{else with .Size}}{{end}}",
        Err(r"template: inspect:1: unexpected <with> in else"),
    ),
    (
        r"{{range 3}}x{{end}}",
        Err(r#"template: inspect:1:19: executing "inspect" at <3>: range can't iterate over 3"#),
    ),
];

#[test]
fn matches_podman() {
    let data = image();
    let mut failures = Vec::new();
    for (text, want) in PODMAN {
        let got = podman_case(&data, text);
        let want = want.map(str::to_string).map_err(str::to_string);
        if got != want {
            failures.push(format!(
                "template: {text}\n   want: {want:?}\n    got: {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        PODMAN.len(),
        failures.join("\n")
    );
}

/// Executes `text` directly on the first image, as cairn's callers will.
fn run(text: &str) -> Result<String, String> {
    let data = image();
    Template::parse(text)
        .and_then(|t| t.execute(&data[0]))
        .map_err(|e| e.to_string())
}

#[test]
fn brief_examples_direct() {
    let id = "70b5f93438d1e955d0ba60587698bb9cb058e9980426c237c7ff466e3b4a6053";
    let cases: &[(&str, &str)] = &[
        ("{{.Id}}", id),
        ("{{.Config.Env}}", "[HOME=/root PATH=/usr/bin]"),
        ("{{json .Config.Env}}", r#"["HOME=/root","PATH=/usr/bin"]"#),
        (
            r#"{{range .Config.Env}}{{if and (ge (len .) 5) (eq (slice . 0 5) "HOME=")}}{{slice . 5 | printf "%q"}}{{end}}{{end}}"#,
            r#""/root""#,
        ),
        (r#"{{index .Config.Labels "a"}}"#, "b"),
        (
            "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}",
            "a=b;num=42;with space=x y;zeta=last;",
        ),
        ("{{if .Config.Labels}}yes{{else}}no{{end}}", "yes"),
        ("{{if .Annotations}}yes{{else}}no{{end}}", "no"),
        ("{{len .RootFS.Layers}}", "1"),
        (r#"{{printf "%s-%d" .Os 5}}"#, "linux-5"),
        (r#"{{join .Config.Env ","}}"#, "HOME=/root,PATH=/usr/bin"),
        ("{{upper .Os}}", "LINUX"),
        ("  {{- .Os -}}  ", "linux"),
        (
            "{{.Config.Labels}}",
            "map[a:b num:42 with space:x y zeta:last]",
        ),
        ("{{.Annotations}}", "map[]"),
        ("{{.Size}}", "3838"),
        ("{{$.Os}}", "linux"),
        ("{{$x := .Size}}{{if gt $x 1000}}big{{end}}", "big"),
        (
            "{{with .Config}}{{range .Cmd}}[{{.}}]{{else}}none{{end}}{{else}}noconfig{{end}}",
            "[sh]",
        ),
        ("{{with .Parent}}{{.}}{{else}}no parent{{end}}", "no parent"),
    ];
    for (text, want) in cases {
        assert_eq!(run(text).as_deref(), Ok(*want), "template {text}");
    }
}

#[test]
fn error_messages_direct() {
    let cases: &[(&str, &str)] = &[
        (
            "{{.Os.Foo}}",
            r#"template: :1:5: executing "" at <.Os.Foo>: can't evaluate field Foo in type string"#,
        ),
        ("{{foo}}", r#"template: :1: function "foo" not defined"#),
        ("{{.Os", "template: :1: unclosed action"),
        ("x\n{{.Os}", "template: :2: bad character U+007D '}'"),
        ("{{if .Os}}", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{$x}}", r#"template: :1: undefined variable "$x""#),
        (
            "{{lower}}",
            r#"template: :1:2: executing "" at <lower>: wrong number of args for lower: want 1 got 0"#,
        ),
        (
            "{{index .Config.Env 5}}",
            r#"template: :1:2: executing "" at <index .Config.Env 5>: error calling index: index out of range: 5"#,
        ),
        (
            "{{lt .Os 3}}",
            r#"template: :1:2: executing "" at <lt .Os 3>: error calling lt: incompatible types for comparison"#,
        ),
        (
            "{{call .Os}}",
            r#"template: :1:2: executing "" at <call .Os>: error calling call: non-function of type string"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            run(text).map_err(|e| e == *want),
            Err(true),
            "template {text}: {:?}",
            run(text)
        );
    }
}

/// Data podman's images lack: floats, nulls, nested lists and objects.
fn mixed() -> Value {
    json!({
        "f": 1.5,
        "big": 1e21,
        "small": 0.00001,
        "n": null,
        "arr": [1, "a", null, true, 2.5, {"k": "v"}, [1, 2]],
        "obj": {"b": 2, "a": [1], "c": null},
        "empty": [],
    })
}

fn run_mixed(text: &str) -> Result<String, String> {
    Template::parse(text)
        .and_then(|t| t.execute(&mixed()))
        .map_err(|e| e.to_string())
}

#[test]
fn go_value_printing() {
    let cases: &[(&str, &str)] = &[
        ("{{.f}} {{.big}} {{.small}} {{1e6}} {{123456.0}} {{1234567.0}}", "1.5 1e+21 1e-05 1e+06 123456 1.234567e+06"),
        ("{{.n}}|{{.missing}}|{{.missing.deeper}}", "<no value>|<no value>|<no value>"),
        ("{{.arr}}", "[1 a <nil> true 2.5 map[k:v] [1 2]]"),
        ("{{.obj}}", "map[a:[1] b:2 c:<nil>]"),
        ("{{.empty}}", "[]"),
        ("{{json .obj}} {{json .arr}}", r#"{"b":2,"a":[1],"c":null} [1,"a",null,true,2.5,{"k":"v"},[1,2]]"#),
        ("{{json .big}} {{json .small}} {{json 0.1}}", "1e+21 0.00001 0.1"),
        ("{{printf \"%T %T %T %T %T\" .f .arr .obj .n 1}}", "float64 []interface {} map[string]interface {} <nil> int"),
        (
            "{{printf \"%d\" .arr}}",
            "[1 %!d(string=a) <nil> %!d(bool=true) %!d(float64=2.5) map[%!d(string=k):%!d(string=v)] [1 2]]",
        ),
        ("{{printf \"%v %s\" .n .n}}", "<nil> %!s(<nil>)"),
        ("{{print .n 1 .missing}}", "<nil> 1 <nil>"),
        ("{{html .n}}", "&lt;no value&gt;"),
        ("{{printf \"%.2f|%8.3e|%g\" .f .big .small}}", "1.50|1.000e+21|1e-05"),
    ];
    for (text, want) in cases {
        assert_eq!(run_mixed(text).as_deref(), Ok(*want), "template {text}");
    }
}

#[test]
fn go_null_and_comparison_semantics() {
    let ok: &[(&str, &str)] = &[
        (
            "{{if .n}}y{{else}}n{{end}} {{len .n}} {{not .n}}",
            "n 0 true",
        ),
        ("{{range .n}}x{{else}}none{{end}}", "none"),
        ("{{with .n}}x{{else}}none{{end}}", "none"),
        (
            "{{eq .f 1.5}} {{lt .f 2.0}} {{lt .big 1e22}} {{eq .n .missing}}",
            "true true true true",
        ),
        (
            "{{range $k, $v := .obj}}{{$k}}={{$v}};{{end}}",
            "a=[1];b=2;c=<no value>;",
        ),
        (
            "{{index .arr 5 \"k\"}} {{index .arr 6 1}} {{index .obj \"zz\"}}",
            "v 2 <no value>",
        ),
        ("{{range .arr}}{{if .}}T{{else}}F{{end}}{{end}}", "TTFTTTT"),
        ("{{slice .arr 5 6}}", "[map[k:v]]"),
    ];
    for (text, want) in ok {
        assert_eq!(run_mixed(text).as_deref(), Ok(*want), "template {text}");
    }
    let err: &[(&str, &str)] = &[
        (
            "{{.n.x}}",
            r#"template: :1:4: executing "" at <.n.x>: nil pointer evaluating interface {}.x"#,
        ),
        (
            "{{eq .f 1}}",
            r#"template: :1:2: executing "" at <eq .f 1>: error calling eq: incompatible types for comparison"#,
        ),
        (
            "{{eq .arr .arr}}",
            r#"template: :1:2: executing "" at <eq .arr .arr>: error calling eq: non-comparable type [1 a <nil> true 2.5 map[k:v] [1 2]]: []interface {}"#,
        ),
        (
            "{{join .arr \",\"}}",
            r#"template: :1:7: executing "" at <.arr>: wrong type for value; expected []string; got []interface {}"#,
        ),
    ];
    for (text, want) in err {
        assert_eq!(
            run_mixed(text).map_err(|e| e == *want),
            Err(true),
            "template {text}: {:?}",
            run_mixed(text)
        );
    }
}

#[test]
fn define_and_template() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{{define "x"}}<{{.}}>{{end}}{{template "x" .f}}{{template "x" "s"}}"#,
            "<1.5><s>",
        ),
        (r#"{{block "b" .obj.b}}[{{.}}]{{end}}"#, "[2]"),
        (r#"{{define "x"}}{{$}}{{end}}{{template "x" 7}}"#, "7"),
    ];
    for (text, want) in cases {
        assert_eq!(run_mixed(text).as_deref(), Ok(*want), "template {text}");
    }
}

#[test]
fn parse_once_execute_many() {
    let t = Template::parse("{{.name}}:{{len .items}}").expect("parses");
    assert_eq!(
        t.execute(&json!({"name": "a", "items": [1]})).as_deref(),
        Ok("a:1")
    );
    assert_eq!(
        t.execute(&json!({"name": "b", "items": {}})).as_deref(),
        Ok("b:0")
    );
}

/// Hostile input: deep nesting must fail cleanly rather than overflow the stack.
#[test]
fn deep_nesting_is_an_error() {
    let text = format!("{{{{{}1{}}}}}", "(".repeat(100_000), ")".repeat(100_000));
    let err = Template::parse(&text).expect_err("too deep").to_string();
    assert_eq!(err, "template: :1: max expression depth exceeded");
    let text = "{{if 1}}".repeat(10_000) + &"{{end}}".repeat(10_000);
    assert!(Template::parse(&text).is_err());
    let t = Template::parse(r#"{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}"#)
        .expect("parses");
    let err = t.execute(&json!(1)).expect_err("recursion").to_string();
    assert!(
        err.ends_with("exceeded maximum template depth (300)"),
        "{err}"
    );
    // Nesting inside recursion counts too.
    let body = "{{if 1}}".repeat(150) + "{{template \"r\" .}}" + &"{{end}}".repeat(150);
    let text = format!("{{{{define \"r\"}}}}{body}{{{{end}}}}{{{{template \"r\" .}}}}");
    let t = Template::parse(&text).expect("parses");
    let err = t.execute(&json!(1)).expect_err("deep").to_string();
    assert!(
        err.ends_with("exceeded maximum template depth (300)"),
        "{err}"
    );
}

/// Go's `fmt` tests of explicit argument indexes (`reorderTests` in
/// `fmt/fmt_test.go`), through `printf`: where an index may stand (before a
/// `*` width or precision, or the verb), what a misplaced or bad one prints,
/// and that indexes turn off `%!(EXTRA …)`.
#[test]
fn printf_argument_indexes_as_go() {
    let cases: &[(&str, &str)] = &[
        (r#"{{printf "%[2]*[1]d" 2 5}}"#, "    2"),
        (r#"{{printf "%[3]*.[2]*[1]f" 12.0 2 6}}"#, " 12.00"),
        (r#"{{printf "%[1]*.[2]*[3]f" 6 2 12.0}}"#, " 12.00"),
        (r#"{{printf "%[1]*[3]f" 10 99 12.0}}"#, " 12.000000"),
        (r#"{{printf "%.[1]*[3]f" 6 99 12.0}}"#, "12.000000"),
        (r#"{{printf "%[1]*.[3]f" 6 3 12.0}}"#, "    12"),
        (
            r#"{{printf "%d %d %d %#[1]o %#o %#o" 11 12 13}}"#,
            "11 12 13 013 014 015",
        ),
        (r#"{{printf "%[d" 2 1}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%[]d" 2 1}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%[-3]d" 2 1}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%[99]d" 2 1}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%[3]" 2 1}}"#, "%!(NOVERB)"),
        (r#"{{printf "%[1].2d" 5 6}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%[1]2d" 2 1}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%3.[2]d" 7}}"#, "%!d(BADINDEX)"),
        (r#"{{printf "%.[2]d" 7}}"#, "%!d(BADINDEX)"),
        (
            r#"{{printf "%d %d %d %#[1]o %#o %#o %#o" 11 12 13}}"#,
            "11 12 13 013 014 015 %!o(MISSING)",
        ),
        (r#"{{printf "%[5]d %[2]d %d" 1 2 3}}"#, "%!d(BADINDEX) 2 3"),
        (r#"{{printf "%d %[3]d %d" 1 2}}"#, "1 %!d(BADINDEX) 2"),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = run(text);
        if got.as_deref() != Ok(*want) {
            failures.push(format!("{text}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A slice of podman's `define.Info`, for the shape tests.
mod shapes {
    use crate::{GoField, GoStruct, Shape};
    pub static SECURITY: GoStruct = GoStruct {
        name: "define.SecurityInfo",
        fields: &[
            GoField::new("AppArmorEnabled", "apparmorEnabled", Shape::Any),
            GoField::new("Rootless", "rootless", Shape::Any),
        ],
    };
    pub static OCI: GoStruct = GoStruct {
        name: "*define.OCIRuntimeInfo",
        fields: &[GoField::new("Name", "name", Shape::Any)],
    };
    pub static HOST: GoStruct = GoStruct {
        name: "*define.HostInfo",
        fields: &[
            GoField::new("CgroupsVersion", "cgroupVersion", Shape::Any),
            GoField::new("OCIRuntime", "ociRuntime", Shape::Struct(&OCI)),
            GoField::new("Security", "security", Shape::Struct(&SECURITY)),
            GoField::new("Conmon", "conmon", Shape::Struct(&OCI)),
        ],
    };
    pub static MOUNT: GoStruct = GoStruct {
        name: "define.Mount",
        fields: &[GoField::new("Path", "path", Shape::Any)],
    };
    pub static INFO: GoStruct = GoStruct {
        name: "*define.Info",
        fields: &[
            GoField::new("Host", "host", Shape::Struct(&HOST)),
            GoField::new("Registries", "registries", Shape::Any),
            GoField::new("Mounts", "mounts", Shape::Slice(&Shape::Struct(&MOUNT))),
        ],
    };
}

fn run_shaped(text: &str) -> Result<String, String> {
    let data = json!({
        "host": {
            "cgroupVersion": "v2",
            "ociRuntime": {"name": "cairn"},
            "security": {"apparmorEnabled": false, "rootless": true},
        },
        "registries": {"search": ["docker.io"]},
        "mounts": [{"path": "/a"}, {"path": "/b"}],
    });
    Template::parse_named("info", text)
        .and_then(|t| t.execute_as(&data, Shape::Struct(&shapes::INFO)))
        .map_err(|e| e.to_string())
}

/// podman's Go field names resolve on JSON keys; a field the struct lacks
/// is Go's error (podman 4.3 `info --format`), a map keeps map rules.
#[test]
fn go_struct_fields() {
    assert_eq!(run_shaped("{{.Host.OCIRuntime.Name}}").unwrap(), "cairn");
    assert_eq!(run_shaped("{{.Host.CgroupsVersion}}").unwrap(), "v2");
    assert_eq!(run_shaped("{{.Host.Security.Rootless}}").unwrap(), "true");
    assert_eq!(run_shaped("{{.Host.Security}}").unwrap(), "{false true}");
    assert_eq!(
        run_shaped("{{range .Mounts}}{{.Path}} {{end}}").unwrap(),
        "/a /b "
    );
    assert_eq!(
        run_shaped("{{json .Host.Security}}").unwrap(),
        r#"{"apparmorEnabled":false,"rootless":true}"#
    );
    assert_eq!(run_shaped("{{.Registries.search}}").unwrap(), "[docker.io]");
    assert_eq!(run_shaped("{{.Registries.nope}}").unwrap(), "<no value>");
    assert_eq!(
        run_shaped("{{.Host.Foo}}").unwrap_err(),
        r#"template: info:1:7: executing "info" at <.Host.Foo>: can't evaluate field Foo in type *define.HostInfo"#
    );
    assert_eq!(
        run_shaped("{{.host.arch}}").unwrap_err(),
        r#"template: info:1:7: executing "info" at <.host.arch>: can't evaluate field host in type *define.Info"#
    );
    assert_eq!(
        run_shaped("{{range .Mounts}}{{.path}}{{end}}").unwrap_err(),
        r#"template: info:1:19: executing "info" at <.path>: can't evaluate field path in type define.Mount"#
    );
    // A struct pointer absent from the data is nil, as Go's.
    assert_eq!(run_shaped("{{.Host.Conmon}}").unwrap(), "<nil>");
    assert_eq!(
        run_shaped("{{.Host.Conmon.Name}}").unwrap_err(),
        r#"template: info:1:7: executing "info" at <.Host.Conmon.Name>: nil pointer evaluating *define.OCIRuntimeInfo.Name"#
    );
    let row = json!({"ID": "abc", "Labels": {"a": "b"}});
    let t = Template::parse_named("ps", "{{.ID}} {{.Labels.a}} {{.Labels.z}}").unwrap();
    assert_eq!(
        t.execute_as(&row, Shape::Keys("containers.psReporter"))
            .unwrap(),
        "abc b <no value>"
    );
    let t = Template::parse_named("ps", "{{.Foo}}").unwrap();
    assert_eq!(
        t.execute_as(&row, Shape::Keys("containers.psReporter"))
            .unwrap_err()
            .to_string(),
        r#"template: ps:1:2: executing "ps" at <.Foo>: can't evaluate field Foo in type containers.psReporter"#
    );
}
