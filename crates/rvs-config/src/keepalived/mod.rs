//! keepalived.conf parser. (Being built.)
