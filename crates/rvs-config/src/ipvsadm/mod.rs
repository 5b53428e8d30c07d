//! ipvsadm command-line grammar, rule files (`-S`/`-R`) and listing printers. (Being built.)
