//! End-to-end tests across the workspace, against real peers: git over smart
//! HTTP(S) and SSH, AWS's Lambda Runtime Interface Emulator running the real
//! `bootstrap`, and moto for STS, IAM, Lambda and S3. The one double,
//! `aws_double`, answers like STS and Lambda for what moto cannot do
//! (Pending functions, conflicts, function errors, throttling).

mod aws_double;
mod clone;
mod control;
mod faults;
mod hostile;
mod image;
mod lambda;
mod scheduled;
mod soak;
mod util;
