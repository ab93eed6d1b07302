//! Passing open descriptors to a renderer over its Unix socket (`SCM_RIGHTS`), so a confined
//! renderer reads its spill files without being allowed to open any file.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Most descriptors one message carries (one per spilled input).
pub const MAX_FDS: usize = 64;

/// A message of one byte with room for `payload` bytes of control data: the byte, its iovec
/// and the control buffer, boxed so the header's pointers stay valid for the system call.
struct OneByte {
    byte: [u8; 1],
    iov: libc::iovec,
    control: Vec<u8>,
}

impl OneByte {
    fn new(payload: usize) -> Box<Self> {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
        let mut m = Box::new(Self {
            byte: [0],
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 1,
            },
            control: vec![0u8; space],
        });
        m.iov.iov_base = m.byte.as_mut_ptr().cast();
        m
    }

    /// A header pointing at this message's byte and control buffer.
    fn header(&mut self) -> libc::msghdr {
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut self.iov;
        msg.msg_iovlen = 1;
        msg.msg_control = self.control.as_mut_ptr().cast();
        msg.msg_controllen = self.control.len() as _;
        msg
    }
}

/// Sends `fds` over the connected Unix socket `sock`, attached to a single byte.
pub fn send(sock: RawFd, fds: &[RawFd]) -> io::Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptor count",
        ));
    }
    let payload = std::mem::size_of_val(fds);
    let mut message = OneByte::new(payload);
    let msg = message.header();
    // SAFETY: `msg` points into `message`, which outlives the call; its control buffer has
    // CMSG_SPACE(payload) bytes, as the CMSG_* macros expect.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), payload);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) == 1 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Receives up to `max` descriptors sent by [`send`] on `sock` (blocking).
pub fn recv(sock: RawFd, max: usize) -> io::Result<Vec<OwnedFd>> {
    let max = max.min(MAX_FDS);
    let mut message = OneByte::new(max * std::mem::size_of::<RawFd>());
    let mut msg = message.header();
    let mut fds = Vec::new();
    // SAFETY: as in `send`; the kernel writes at most `msg_controllen` bytes of control data,
    // and only descriptors it installed in this process are read back out of it.
    unsafe {
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n != 1 {
            return Err(if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::new(io::ErrorKind::UnexpectedEof, "no descriptor message")
            });
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::other("more descriptors than expected"));
        }
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_descriptor_sent_arrives_as_a_working_file() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"spilled").unwrap();
        send(a.as_raw_fd(), &[file.as_raw_fd()]).unwrap();
        let mut got = recv(b.as_raw_fd(), 4).unwrap();
        assert_eq!(got.len(), 1);
        let mut received = std::fs::File::from(got.remove(0));
        received.rewind().unwrap();
        let mut text = String::new();
        received.read_to_string(&mut text).unwrap();
        assert_eq!(text, "spilled");
    }
}
