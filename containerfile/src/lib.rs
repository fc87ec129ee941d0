//! What `cairn build` reads: a Containerfile (parsed into stages and
//! instructions, with BuildKit's rules for directives, continuations,
//! heredocs and word expansion) and its build context (the files a
//! `.containerignore` or `.dockerignore` leaves, and the sources a `COPY`
//! or `ADD` names in it). Nothing here runs a container or touches the
//! store: the executor (`cairn build` in the CLI) does.

pub mod context;
pub mod expand;
pub mod ignore;
pub mod parse;

pub use context::{
    checksum, tar_sources, Context, ContextError, Source, SourceKind, TarOptions, TarStats,
};
pub use expand::{expand, expand_words, ExpandError};
pub use ignore::{Ignore, IgnoreError};
pub use parse::{
    parse, Cmd, Containerfile, Copy, Health, Heredoc, Instruction, Op, ParseError, Stage,
};
