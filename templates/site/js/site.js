// Names the CloudFront edge that served the page: CloudFront sets the x-amz-cf-pop response header, which a script
// reads from a HEAD request of the page itself (it cannot read the headers of the page it runs in).
const stamp = document.getElementById("stamp");
fetch(location.href, { method: "HEAD", cache: "no-store" })
  .then((r) => {
    const pop = r.headers.get("x-amz-cf-pop");
    stamp.textContent = pop ? "Served by the CloudFront edge " + pop + "." : "Not served through CloudFront.";
  })
  .catch(() => {});
