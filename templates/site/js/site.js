// Shows where the page was served from: CloudFront names its edge location in the x-amz-cf-pop header.
document.getElementById("stamp").textContent = "Loaded at " + new Date().toISOString();
